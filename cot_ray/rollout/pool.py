"""RolloutPool: N rollout workers fed with small units of work, scalable while a run goes on.

The driver (single controller) owns a queue of work units. Each ready worker holds up to
``units_per_worker`` units at once (its engine runs their problems side by side, so one unit's
tail does not leave the engine idle); when a unit finishes its trajectories are stored under the
unit's id, so every problem is returned exactly once. If a worker dies (killed, out of memory,
node lost) its units go back to the front of the queue and a replacement worker is started; a
unit that outlives ``unit_timeout_s`` gets its worker killed and is redone the same way, and a
unit that fails ``max_unit_retries`` times stops the run with an error naming the worker.

``scale(n)`` may be called at any time, from any thread: new workers start their engines in
the background and join as soon as they answer; removed workers finish their current unit
first. ``update_weights`` reaches every worker in place, versioned; workers started later load
the newest checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from cot_ray.config import RolloutConfig
from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.rollout.units import PoolStats, RolloutError, RolloutRequest, WorkerSlot, WorkUnit
from cot_ray.tasks import Problem

log = logging.getLogger(__name__)


class RolloutPool:
    def __init__(self, checkpoint: str, num_workers: int = 2, engine: str = "auto",
                 engine_kwargs: dict[str, Any] | None = None, worker_cpus: float = 1.0,
                 version: int = 0, unit_timeout_s: float = 900.0, max_unit_retries: int = 3,
                 ready_timeout_s: float = 600.0, max_start_failures: int = 3, worker_gpus: float = 0.0,
                 worker_resources: dict[str, float] | None = None, units_per_worker: int = 2,
                 unit_size: int | None = None) -> None:
        import ray

        from cot_ray.raycluster import ensure_ray
        from cot_ray.rollout.worker import RolloutWorker

        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if units_per_worker < 1:
            raise ValueError(f"units_per_worker must be >= 1, got {units_per_worker}")
        ensure_ray()
        threads = max(1, int(worker_cpus))
        self._actor_cls = ray.remote(RolloutWorker).options(
            num_cpus=worker_cpus, num_gpus=worker_gpus, resources=dict(worker_resources or {}),
            # threaded: units, weight updates and probes arrive while other units run
            max_concurrency=units_per_worker + 2,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                                      "VLLM_LOGGING_LEVEL": "WARNING"}},
        )
        self.engine, self.engine_kwargs = engine, dict(engine_kwargs or {})
        self.checkpoint, self.version = checkpoint, version
        self.unit_timeout_s, self.max_unit_retries, self.ready_timeout_s = (
            unit_timeout_s, max_unit_retries, ready_timeout_s)
        self.units_per_worker = units_per_worker
        self.unit_size = unit_size or RolloutConfig().unit_size  # the one default: the config's
        self.stats = PoolStats()
        self.max_start_failures = max_start_failures
        self._start_failures = 0
        self._lock = threading.RLock()
        self._names = itertools.count()
        self._workers: dict[str, WorkerSlot] = {}
        self._target = num_workers
        self._reconcile()

    # ---- size -------------------------------------------------------------------------------
    @property
    def target(self) -> int:
        return self._target

    def scale(self, n: int) -> None:
        """Grow or shrink to ``n`` workers without restarting the others; safe during ``run``."""
        if n < 1:
            raise ValueError(f"a pool needs at least one worker, got {n}")
        with self._lock:
            log.info("rollout pool: scale %d -> %d", self._target, n)
            self._target = n
            self._reconcile()

    def live_workers(self) -> list[str]:
        with self._lock:
            return [w.name for w in self._workers.values() if not w.retiring]

    def placement(self) -> dict[str, str]:
        """The Ray node id of every ready worker, by worker name."""
        with self._lock:
            return {w.name: w.info["node"] for w in self._workers.values() if w.ready and not w.retiring}

    def _reconcile(self) -> None:
        """Start or retire workers until the non-retiring count equals the target."""
        live = [w for w in self._workers.values() if not w.retiring]
        for _ in range(self._target - len(live)):
            name = f"rollout-{next(self._names)}"
            actor = self._actor_cls.remote(self.checkpoint, self.version, self.engine, self.engine_kwargs)
            self._workers[name] = WorkerSlot(name, actor, actor.info.remote(), started=time.monotonic())
            self.stats.started += 1
        if len(live) > self._target:
            # idle (or still starting) workers go first
            victims = sorted(live, key=lambda w: (len(w.units), w.ready))[: len(live) - self._target]
            for w in victims:
                w.retiring = True
                if not w.units:
                    self._remove(w)
        for w in list(self._workers.values()):
            if w.retiring and not w.units and w.name in self._workers:
                self._remove(w)

    def _remove(self, w: WorkerSlot) -> None:
        import ray

        self._workers.pop(w.name, None)
        ray.kill(w.actor, no_restart=True)

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every live worker's engine answers (raises naming any that fail)."""
        import ray

        deadline = time.monotonic() + (timeout_s or self.ready_timeout_s)
        while True:
            with self._lock:
                pending = {w.ready_ref: w for w in self._workers.values() if not w.ready and not w.retiring}
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=max(0.0, deadline - time.monotonic()))
            for ref in done:
                self._on_ready(pending[ref])
            if time.monotonic() > deadline:
                raise RolloutError(f"workers not ready after {timeout_s}s: {sorted(w.name for w in pending.values())}")

    def _on_ready(self, w: WorkerSlot) -> bool:
        """Mark a started worker ready; a worker that died while starting is replaced."""
        import ray

        try:
            info = ray.get(w.ready_ref)
        except ray.exceptions.RayError as err:
            self._start_failures += 1
            if self._start_failures >= self.max_start_failures:
                raise RolloutError(f"rollout worker {w.name} failed to start ({self._start_failures} failed "
                                   f"starts in a row); last error:\n{err}") from err
            log.warning("rollout worker %s failed to start, replacing it: %s", w.name, str(err).splitlines()[0])
            with self._lock:
                self._workers.pop(w.name, None)
                self.stats.replaced += 1
                self._reconcile()
            return False
        self._start_failures = 0
        w.ready, w.info = True, info
        log.info("rollout worker %s ready: %s", w.name, info)
        return True

    # ---- weights ----------------------------------------------------------------------------
    def update_weights(self, checkpoint: str, version: int, timeout_s: float = 300.0) -> float:
        """Load ``checkpoint`` into every live worker in place; returns the slowest reload time.

        Workers still starting pick it up too: they are told after they become ready.
        """
        import ray

        self.wait_ready()
        with self._lock:
            self.checkpoint, self.version = checkpoint, version
            workers = [w for w in self._workers.values() if w.ready]
        refs = {w.actor.update_weights.remote(checkpoint, version): w for w in workers}
        done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        if pending:
            raise RolloutError(f"weight update to v{version} timed out on {sorted(refs[r].name for r in pending)}")
        results = []
        for ref in done:
            try:
                results.append((refs[ref], ray.get(ref)))
            except ray.exceptions.RayActorError as err:  # its replacement starts on these weights
                self._replace(refs[ref], f"died during the weight update to v{version}: {str(err).splitlines()[0]}")
        bad = [w.name for w, res in results if res["version"] != version]
        if bad:
            raise RolloutError(f"workers {bad} did not take weights v{version}")
        return max((res["seconds"] for _, res in results), default=0.0)

    def _replace(self, w: WorkerSlot, why: str) -> None:
        """``w`` is gone outside a run: a new worker takes its place (on the newest weights)."""
        log.warning("rollout worker %s %s; replacing it", w.name, why)
        with self._lock:
            if self._workers.pop(w.name, None) is not None and not w.retiring:
                self.stats.replaced += 1
            self._reconcile()

    def generate(self, prompts, specs):
        """Run a raw batch on one ready worker (used to check weights after a sync)."""
        import ray

        self.wait_ready()
        w = next(w for w in self._workers.values() if w.ready and not w.retiring)
        return ray.get(w.actor.generate.remote(prompts, specs), timeout=self.unit_timeout_s)

    # ---- running ----------------------------------------------------------------------------
    def run(self, task: str, problems: Sequence[Problem], config: ExecutionConfig, unit_size: int | None = None,
            on_unit: Callable[[int, int], None] | None = None) -> list[Trajectory]:
        """Solve ``problems``; returns one trajectory per problem, in order.

        ``on_unit(done, total)`` is called after each finished unit (progress bars, live scaling).
        """
        return self.run_many([RolloutRequest(task=task, problems=problems, config=config)], unit_size, on_unit)[0]

    def run_many(self, requests: Sequence[RolloutRequest], unit_size: int | None = None,
                 on_unit: Callable[[int, int], None] | None = None) -> list[list[Trajectory]]:
        """Solve every request's problems from one queue of units; one trajectory list per request,
        each in its problems' order. Units of one request run beside another's, so no engine waits
        for the last chains of a request to finish (samples do not depend on the grouping: their
        seeds come from each problem's identity)."""
        import ray

        unit_size = unit_size or self.unit_size
        if unit_size < 1:
            raise ValueError(f"unit_size must be >= 1, got {unit_size}")
        units: deque[WorkUnit] = deque()
        spans = []
        for r in requests:
            first = len(units)
            units.extend(WorkUnit(first + j, r.task, list(r.problems[i:i + unit_size]), r.config)
                         for j, i in enumerate(range(0, len(r.problems), unit_size)))
            spans.append(range(first, len(units)))
        total, results = len(units), {}
        inflight: dict[Any, tuple[WorkerSlot, WorkUnit]] = {}
        while len(results) < total:
            with self._lock:
                self._dispatch(units, inflight)
                waiting = list(inflight) + [w.ready_ref for w in self._workers.values() if not w.ready]
            done, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in done:
                self._collect(ref, inflight, units, results, on_unit, total)
            self._check_timeouts(inflight, units)
        return [[t for k in span for t in results[k]] for span in spans]

    def _dispatch(self, units: deque[WorkUnit], inflight: dict[Any, tuple[WorkerSlot, WorkUnit]]) -> None:
        """Fill every ready worker up to ``units_per_worker``, least loaded first."""
        ready = [w for w in self._workers.values() if w.ready and not w.retiring]
        for _ in range(self.units_per_worker):
            for w in sorted(ready, key=lambda w: len(w.units)):
                if units and len(w.units) < self.units_per_worker:
                    unit = units.popleft()
                    unit.tries += 1
                    unit.started = time.monotonic()
                    w.units[unit.uid] = unit
                    inflight[w.actor.run.remote(unit.task, unit.problems, unit.config)] = (w, unit)

    def _collect(self, ref, inflight, units, results, on_unit, total) -> None:
        import ray

        entry = inflight.pop(ref, None)
        if entry is None:  # a readiness probe
            starting = next((x for x in list(self._workers.values()) if x.ready_ref == ref and not x.ready), None)
            if starting is not None:
                self._on_ready(starting)
            return
        w, unit = entry  # a re-queued unit's old ref left ``inflight`` with it (``_lost``)
        del w.units[unit.uid]
        try:
            trajectories = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as err:
            self._lost(w, [unit], units, inflight, f"died: {str(err).splitlines()[0]}")
            return
        except ray.exceptions.RayTaskError as err:
            raise RolloutError(f"unit {unit.uid} failed on {w.name}: {err}") from err
        results[unit.uid] = trajectories
        self.stats.units_by_worker[w.name] = self.stats.units_by_worker.get(w.name, 0) + 1
        if on_unit is not None:
            on_unit(len(results), total)
        with self._lock:
            if w.retiring and not w.units:
                self._remove(w)

    def _lost(self, w: WorkerSlot, lost: list[WorkUnit], units: deque[WorkUnit],
              inflight: dict[Any, tuple[WorkerSlot, WorkUnit]], why: str) -> None:
        """``w`` is gone: every unit it held goes back to the front of the queue."""
        lost = lost + list(w.units.values())
        w.units.clear()
        for ref in [r for r, (x, _) in inflight.items() if x is w]:
            inflight.pop(ref)
        log.warning("rollout worker %s %s; units %s go back to the queue", w.name, why, [u.uid for u in lost])
        for unit in lost:
            if unit.tries > self.max_unit_retries:
                raise RolloutError(f"unit {unit.uid} failed {unit.tries} times; last on {w.name}, which {why}")
        units.extendleft(sorted(lost, key=lambda u: -u.uid))
        with self._lock:
            self.stats.units_redone += len(lost)
            if w.name in self._workers:
                self._remove(w)
                if not w.retiring:
                    self.stats.replaced += 1
            self._reconcile()

    def _check_timeouts(self, inflight: dict[Any, tuple[WorkerSlot, WorkUnit]], units: deque[WorkUnit]) -> None:
        now = time.monotonic()
        for w, unit in list(inflight.values()):
            if unit.uid in w.units and now - unit.started > self.unit_timeout_s:
                w.units.pop(unit.uid)
                self._lost(w, [unit], units, inflight, f"exceeded the unit timeout of {self.unit_timeout_s}s")
        with self._lock:
            for w in list(self._workers.values()):
                if not w.ready and now - w.started > self.ready_timeout_s:
                    raise RolloutError(f"rollout worker {w.name} did not start within {self.ready_timeout_s}s")

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        with self._lock:
            for w in list(self._workers.values()):
                self._remove(w)


def pool_from_config(rollout, checkpoint: str, version: int = 0) -> RolloutPool:
    """A pool as a :class:`cot_ray.config.RolloutConfig` describes it (stage IV's is resized:
    :meth:`~cot_ray.config.RolloutConfig.sized`)."""
    kwargs = {"gpu_memory_utilization": rollout.gpu_memory_utilization} if rollout.gpu_memory_utilization else {}
    return RolloutPool(checkpoint, num_workers=rollout.workers, engine=rollout.engine,
                       engine_kwargs=kwargs, worker_cpus=rollout.cpus_per_worker, version=version,
                       worker_gpus=rollout.gpus_per_worker, worker_resources=rollout.resources,
                       units_per_worker=rollout.units_per_worker, unit_size=rollout.unit_size)
