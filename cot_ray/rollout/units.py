"""The rollout pool's bookkeeping: work units, the workers holding them, counters and the error.

Kept apart from :mod:`cot_ray.rollout.pool` (which schedules) so the records read on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cot_ray.mtp import ExecutionConfig
from cot_ray.tasks import Problem


@dataclass(frozen=True, kw_only=True)
class RolloutRequest:
    """One batch of problems to solve on the pool: the task, the problems and how to run them.
    Several go to :meth:`~cot_ray.rollout.pool.RolloutPool.run_many` together, so the engines stay
    full while the longest chains of each finish."""

    task: str
    problems: Sequence[Problem]
    config: ExecutionConfig


@dataclass
class WorkUnit:
    """A few problems solved together on one worker; ``tries`` counts its dispatches (retries)."""

    uid: int
    task: str
    problems: list[Problem]
    config: ExecutionConfig
    tries: int = 0
    started: float = 0.0


@dataclass
class WorkerSlot:
    """One rollout actor as the pool sees it: starting, ready or retiring, and the units it holds."""

    name: str
    actor: Any
    ready_ref: Any
    ready: bool = False
    retiring: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # what the ready probe answered (pid, node, engine...)
    units: dict[int, WorkUnit] = field(default_factory=dict)  # in flight, by uid
    started: float = 0.0


@dataclass
class PoolStats:
    """What the pool did: workers started and replaced, units redone, units finished per worker."""

    started: int = 0
    replaced: int = 0
    units_redone: int = 0
    units_by_worker: dict[str, int] = field(default_factory=dict)


class RolloutError(RuntimeError):
    """A unit could not be completed; the message names the worker(s) involved."""
