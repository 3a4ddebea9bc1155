"""The records stage IV passes between its processes (no torch, no Ray: both sides import them).

    driver --LearnerBatch (per-worker queues)--> learner workers
    learner rank 0 --Ready | Published (control queue)--> driver
    one update's samples, on the driver: RolloutBatch (with its Timings)

Keyword construction only, so a record read at the other end of a queue names every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cot_ray.mtp import Trajectory
from cot_ray.rl.experience import StepSequence
from cot_ray.verify.verifier import Score


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Seconds one update's batch spent being sampled (the pool) and scored (the reward actor)."""

    generate_s: float = 0.0
    score_s: float = 0.0

    def __add__(self, other: Timings) -> Timings:
        return Timings(generate_s=self.generate_s + other.generate_s, score_s=self.score_s + other.score_s)


@dataclass(frozen=True, kw_only=True)
class RolloutBatch:
    """One update's batch: the experience the learner trains on and what the metrics row reads.

    ``logged``/``scores`` are the first sampling round's trajectories and their scores (an
    unbiased sample of the training distribution: dynamic filtering would bias the rest);
    ``experience`` is built from the groups the filter kept; ``version`` is the oldest policy
    version that sampled any of them.
    """

    logged: list[Trajectory]
    scores: list[Score]
    experience: list[StepSequence]
    version: int
    flat_groups: float
    rounds: int
    timings: Timings


@dataclass(frozen=True, kw_only=True)
class LearnerBatch:
    """The batch that updates policy version ``base``: an object ref to every worker's shard."""

    base: int
    ref: Any


@dataclass(frozen=True, kw_only=True)
class LearnerChannels:
    """The learner's queues: one inbox per worker rank, one control queue back to the driver."""

    inboxes: list[Any]
    control: Any


@dataclass(frozen=True, kw_only=True)
class Ready:
    """A learner worker group (re)started at ``version``: the driver resends what it needs."""

    version: int


@dataclass(frozen=True, kw_only=True)
class UpdateStats:
    """One update's losses and diagnostics, averaged over its optimiser steps."""

    loss: float = 0.0
    value_loss: float = 0.0
    kl: float = 0.0
    clip_frac: float = 0.0
    entropy: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Published:
    """A new policy version, published by rank 0: its weights folder (what vLLM reloads),
    whether a checkpoint follows it, the update's stats and its time split."""

    version: int
    path: str
    checkpointed: bool
    lr: float
    stats: UpdateStats
    learn_s: float
    idle_s: float
    save_s: float
