"""One rollout pool for a run's consecutive rollout stages, reloaded instead of restarted.

Starting a pool costs 40-90 s on CPU (vLLM engines loading, compiling, warming up); loading new
weights into a running engine costs about 0.05 s. The pipeline's evaluations, stage III's sampling
and the RL runs therefore share one :class:`PoolKeeper`: the pool it holds moves from checkpoint to
checkpoint (:meth:`RolloutPool.update_weights`) and from size to size (:meth:`RolloutPool.scale`:
RL gives a core to its learner), and is shut down only when a training stage needs the CPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cot_ray.config import PoolSize, RolloutConfig
from cot_ray.profile import phase

if TYPE_CHECKING:
    from cot_ray.rollout.pool import RolloutPool

log = logging.getLogger(__name__)
T = TypeVar("T")


class PoolKeeper:
    """Holds at most one running pool of ``rollout``'s kind; ``get`` returns it on given weights."""

    def __init__(self, rollout: RolloutConfig) -> None:
        self.rollout = rollout
        self.pool: RolloutPool | None = None
        self.starts = 0
        self._shape: RolloutConfig | None = None

    def get(self, checkpoint: str | Path, size: PoolSize | None = None) -> RolloutPool:
        """The pool, holding ``checkpoint``'s weights, with ``size``'s workers (default: the
        config's). A pool whose workers are of another shape (CPUs each) is replaced."""
        from cot_ray.rollout.pool import pool_from_config

        wanted = self.rollout.sized(size) if size is not None else self.rollout
        if self.pool is not None and self._shape != wanted.model_copy(update={"workers": self._shape.workers}):
            self.close()  # workers of another shape: scale() cannot change a worker's CPUs
        if self.pool is None:
            with phase("engine start"):
                self.pool = pool_from_config(wanted, str(checkpoint))
                self.pool.wait_ready()
            self.starts += 1
        else:
            if self.pool.checkpoint != str(checkpoint):
                seconds = self.pool.update_weights(str(checkpoint), self.pool.version + 1)
                log.info("rollout pool: weights of %s loaded in %.2fs (no restart)", checkpoint, seconds)
            if self.pool.target != wanted.workers:
                self.pool.scale(wanted.workers)
                with phase("engine start"):
                    self.pool.wait_ready()
        self._shape = wanted
        return self.pool

    def close(self) -> None:
        """Shut the pool down (a training stage needs the CPUs); the next ``get`` starts one."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool, self._shape = None, None

    def __enter__(self) -> PoolKeeper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def with_pool(rollout: RolloutConfig, checkpoint: str | Path, work: Callable[[RolloutPool], T]) -> T:
    """``work(pool)`` on a pool of its own over ``checkpoint``, shut down afterwards."""
    with PoolKeeper(rollout) as keeper:
        return work(keeper.get(checkpoint))
