"""RolloutWorker: one Ray actor, one engine, many trajectories in flight.

A worker receives a unit of problems and runs them all step-synchronously through the
MTP/RMTP/RTBS executor, so its engine sees one batched request per round instead of one request
per problem. Each trajectory records the policy version the worker held when it ran.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from cot_ray.mtp import Completion, ExecutionConfig, MTPExecutor, SamplingSpec, Trajectory
from cot_ray.tasks import Problem, get_task

log = logging.getLogger(__name__)


class RolloutWorker:
    """Plain class; :func:`cot_ray.rollout.pool.RolloutPool` wraps it with ``ray.remote``."""

    def __init__(self, checkpoint: str, version: int = 0, engine: str = "auto",
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        from cot_ray.rollout.engines import make_engine

        t0 = time.perf_counter()
        self.engine = make_engine(engine, checkpoint, **(engine_kwargs or {}))
        self.version = version
        self.startup_s = time.perf_counter() - t0
        self.units_done = 0

    def info(self) -> dict[str, Any]:
        """Liveness probe and identity: answers only once the engine is up."""
        return {"pid": os.getpid(), "version": self.version, "engine": type(self.engine).__name__,
                "checkpoint": self.engine.checkpoint, "startup_s": self.startup_s, "units_done": self.units_done}

    def run(self, task: str, problems: list[Problem], config: ExecutionConfig) -> list[Trajectory]:
        trajectories = MTPExecutor(get_task(task), self.engine, config).run(problems, policy_version=self.version)
        self.units_done += 1
        return trajectories

    def generate(self, prompts: list[list[int]], specs: list[SamplingSpec]) -> list[Completion]:
        return self.engine.generate(prompts, specs)

    def update_weights(self, checkpoint: str, version: int) -> dict[str, Any]:
        """Reload weights in place (no engine restart) and take the new version."""
        seconds = self.engine.reload(checkpoint)
        self.version = version
        return {"version": version, "seconds": seconds}
