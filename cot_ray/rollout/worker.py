"""RolloutWorker: one Ray actor, one engine, several work units in flight at once.

One thread of the actor (the engine thread) owns the engine and a single
:class:`~cot_ray.mtp.MTPExecutor`; ``run`` calls, which Ray delivers on other threads of this
threaded actor, hand their unit to it and wait. Every unit's problems join the same stream, so a
streaming engine (vLLM) keeps its batch full: the next unit's problems fill the slots that the
current unit's finished problems leave, instead of the engine idling at the end of each unit.

Weight updates (and raw ``generate`` calls) go through the engine thread too: it stops taking new
units, lets the units in flight finish with the weights they started with, runs the update, and
goes on. So every trajectory was produced by one policy version, which it records.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from cot_ray.mtp import Completion, ExecutionConfig, MTPExecutor, SamplingSpec, Trajectory
from cot_ray.mtp.execute import Batch
from cot_ray.tasks import Problem, get_task

log = logging.getLogger(__name__)


class RolloutWorker:
    """Plain class; :class:`cot_ray.rollout.pool.RolloutPool` wraps it with ``ray.remote``
    (threaded, ``max_concurrency`` > the number of units it is given at once)."""

    def __init__(self, checkpoint: str, version: int = 0, engine: str = "auto",
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        from cot_ray.rollout.engines import make_engine

        t0 = time.perf_counter()
        self.engine = make_engine(engine, checkpoint, **(engine_kwargs or {}))
        self.version = version
        self.startup_s = time.perf_counter() - t0
        self.units_done = 0
        self._executor: MTPExecutor | None = None
        self._in_flight: set[Future] = set()
        self._inbox: queue.Queue[tuple[Future, Any]] = queue.Queue()
        threading.Thread(target=self._engine_loop, name="engine", daemon=True).start()

    def info(self) -> dict[str, Any]:
        """Liveness probe and identity: answers only once the engine is up."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "version": self.version,
                "engine": type(self.engine).__name__, "checkpoint": self.engine.checkpoint,
                "startup_s": self.startup_s, "units_done": self.units_done}

    def run(self, task: str, problems: list[Problem], config: ExecutionConfig) -> list[Trajectory]:
        """Solve one unit (alongside any other units in flight on this worker)."""
        return self._submit((get_task(task), problems, config))

    def generate(self, prompts: list[list[int]], specs: list[SamplingSpec]) -> list[Completion]:
        return self._submit(lambda: self.engine.generate(prompts, specs))

    def update_weights(self, checkpoint: str, version: int) -> dict[str, Any]:
        """Reload weights in place (no engine restart) once the units in flight are done."""
        def reload() -> dict[str, Any]:
            seconds = self.engine.reload(checkpoint)
            self.version = version
            return {"version": version, "seconds": seconds}

        return self._submit(reload)

    def _submit(self, item: Any) -> Any:
        future: Future = Future()
        self._inbox.put((future, item))
        return future.result()

    # ---- the engine thread ----------------------------------------------------------------------
    def _engine_loop(self) -> None:
        """Admit units, step the executor while anything is in flight, run calls when drained."""
        call: tuple[Future, Callable[[], Any]] | None = None
        while True:
            busy = self._executor is not None and self._executor.busy
            try:
                while call is None:  # admit units until a call (which needs a drained engine) comes
                    try:
                        future, item = self._inbox.get(block=not busy)
                    except queue.Empty:
                        break
                    if callable(item):
                        call = (future, item)
                    else:
                        self._admit(future, *item)
                        busy = True
                if busy:
                    self._executor.step()
                    continue
            except Exception as err:  # a broken engine: every caller, waiting or later, gets the error
                log.exception("rollout engine failed")
                for future in [*self._in_flight, *([call[0]] if call else [])]:
                    future.set_exception(err)
                while True:
                    self._inbox.get()[0].set_exception(err)
            if call is not None:
                future, fn = call
                call = None
                try:
                    future.set_result(fn())
                except Exception as err:  # the caller's problem (e.g. a bad checkpoint path)
                    future.set_exception(err)

    def _admit(self, future: Future, task, problems: list[Problem], config: ExecutionConfig) -> None:
        def finished(batch: Batch) -> None:
            self.units_done += 1
            self._in_flight.discard(future)
            future.set_result(batch.trajectories)

        if self._executor is None:
            self._executor = MTPExecutor(task, self.engine, config)
        self._in_flight.add(future)
        self._executor.add(problems, self.version, task=task, config=config, on_finish=finished)
