"""The RL driver's handle on the learner: a Ray Train ``fit()`` in a background thread, fed by queues.

Recovery: Ray Train restarts a worker group that lost a worker (``rl.max_failures`` times); the
new group resumes from the learner's latest checkpoint and announces its version with a
:class:`~cot_ray.rl.records.Ready` message. The driver keeps every batch it pushed since the
learner's last checkpoint (object refs, by the version each updates) and resends them on
``Ready``; the learner skips batches that are not for its current version, so none is lost or
applied twice. Versions it publishes again while catching up are dropped here.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from cot_ray.config import RLConfig
from cot_ray.rl.experience import StepSequence
from cot_ray.rl.records import LearnerBatch, LearnerChannels, Published, Ready
from cot_ray.train.workers import LearnerWorkerConfig, torch_trainer

log = logging.getLogger(__name__)
CONTROL_TIMEOUT_S = 1800.0


class LearnerError(RuntimeError):
    """The RL learner failed beyond its failure budget (``rl.max_failures``), or published nothing."""


class LearnerGroup:
    """The learner worker group of one RL run (see the module docstring)."""

    def __init__(self, rl: RLConfig, init: str, out: Path) -> None:
        import ray
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from cot_ray.rl.learner import rl_loop_per_worker

        # the queues live on the driver's node (as Ray Train's controller does): losing another node
        # never loses the learner's inbox or what it published
        here = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)}
        self.queues = [Queue(maxsize=2, actor_options=here) for _ in range(rl.workers)]
        self.control = Queue(actor_options=here)
        self.history: dict[int, Any] = {}  # base version -> object ref of its shards
        self.published = -1  # the newest version handed to the driver
        self.starts = 0  # Ready messages seen: 1 + the restarts
        self.last_checkpoint = 0  # the newest version the learner announced it checkpoints
        self.max_failures = rl.max_failures
        worker = LearnerWorkerConfig(out_dir=str(out), init=init, steps=rl.updates, trainer=rl)
        self.trainer = torch_trainer(rl_loop_per_worker, worker,
                                     {"channels": LearnerChannels(inboxes=self.queues, control=self.control)})
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._fit, daemon=True, name="rl-learner")
        self.thread.start()

    def _fit(self) -> None:
        try:
            result = self.trainer.fit()
            if result.error:
                self.error = result.error
        except BaseException as err:  # surfaced by poll()
            self.error = err

    def _check(self) -> None:
        if self.error is not None:
            raise LearnerError(f"the RL learner failed ({self.starts - 1} restart(s) of its worker group, "
                               f"budget rl.max_failures={self.max_failures}): {self.error}")

    def _put(self, q, item: LearnerBatch | None) -> None:
        """``q.put`` that gives up (raising) as soon as the learner has failed for good."""
        from ray.util.queue import Full

        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while True:
            self._check()
            try:
                return q.put(item, timeout=5.0)
            except Full:
                if time.monotonic() >= deadline:
                    raise LearnerError(f"the RL learner took no batch for {CONTROL_TIMEOUT_S}s") from None

    def push(self, base: int, shards: list[list[StepSequence]]) -> None:
        """Send the batch that updates version ``base`` to every learner worker."""
        import ray

        self.history[base] = ray.put(shards)
        self._send(base)

    def _send(self, base: int) -> None:
        for q in self.queues:
            self._put(q, LearnerBatch(base=base, ref=self.history[base]))

    def _resend(self, version: int) -> None:
        """A learner group started at ``version``: send it every batch pushed from there on."""
        pending = sorted(b for b in self.history if b >= version)
        if pending and pending[0] != version:
            raise LearnerError(f"the RL learner restarted at version {version}, but the driver kept batches "
                               f"only from version {pending[0]}")
        if self.starts > 1:
            log.warning("rl: the learner's worker group restarted (%d of %d) at version %d; resending %d batch(es)",
                        self.starts - 1, self.max_failures, version, len(pending))
        for b in pending:
            self._send(b)

    def poll(self, timeout: float | None) -> Published | None:
        """The next newly published version, or None if none arrives within ``timeout``."""
        from ray.util.queue import Empty

        deadline = time.monotonic() + (timeout if timeout is not None else CONTROL_TIMEOUT_S)
        while True:
            self._check()
            try:
                msg: Ready | Published = self.control.get(
                    timeout=min(5.0, max(0.0, deadline - time.monotonic())) or 0.01)
            except Empty:
                if time.monotonic() >= deadline:
                    if timeout is None:
                        raise LearnerError(f"the RL learner published nothing for {CONTROL_TIMEOUT_S}s") from None
                    return None
                continue
            if isinstance(msg, Ready):
                self.starts += 1
                self._resend(msg.version)
                continue
            if msg.checkpointed:  # published before it is saved: a restart resumes at the previous one
                self.history = {b: r for b, r in self.history.items() if b >= self.last_checkpoint}
                self.last_checkpoint = msg.version
            if msg.version > self.published:
                self.published = msg.version
                return msg

    def close(self) -> None:
        for q in self.queues:
            self._put(q, None)
        self.thread.join(timeout=600)
        self._check()
