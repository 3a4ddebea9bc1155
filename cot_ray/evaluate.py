"""Evaluation: run a policy through MTP/RMTP/RTBS and summarise what happened.

The per-problem records and the summary fields are what ``cot-ray eval`` writes and what the
report tables are built from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cot_ray.mtp import ExecutionConfig, MTPExecutor, Policy, Trajectory
from cot_ray.tasks import Problem, Task


def make_problems(task: Task, difficulty: str, n: int, seed: int) -> list[Problem]:
    """The evaluation set: ``n`` problems, from a seed disjoint from the corpus's by default."""
    from cot_ray.data.corpus import make_problem

    return [make_problem(task, difficulty, seed + 10_000, i) for i in range(n)]


def record(traj: Trajectory) -> dict:
    """One JSON-able line per problem (the ``cot-ray eval`` output format)."""
    return {
        "question": json.dumps(traj.problem.question, sort_keys=True),
        "difficulty": traj.problem.difficulty,
        "answer": traj.problem.answer,
        "predicted": traj.answer,
        "correct": traj.correct,
        "steps": len(traj.steps),
        "reflections": traj.n_reflections,
        "rejections": traj.n_rejections,
        "finish": traj.finish,
        "tokens": traj.n_tokens,
    }


@dataclass(frozen=True)
class Summary:
    n: int
    accuracy: float
    mean_steps: float
    reflection_frequency: float
    rejection_rate: float
    invalid: int

    @classmethod
    def of(cls, trajectories: Sequence[Trajectory]) -> Summary:
        n = len(trajectories)
        steps = sum(len(t.steps) for t in trajectories)
        return cls(
            n=n,
            accuracy=sum(t.correct for t in trajectories) / max(n, 1),
            mean_steps=steps / max(n, 1),
            reflection_frequency=sum(t.n_reflections for t in trajectories) / max(steps, 1),
            rejection_rate=sum(t.n_rejections for t in trajectories) / max(steps, 1),
            invalid=sum(t.finish == "invalid" for t in trajectories),
        )

    def line(self) -> str:
        return (f"n={self.n} accuracy={self.accuracy:.1%} steps={self.mean_steps:.2f} "
                f"reflection={self.reflection_frequency:.1%} rejected={self.rejection_rate:.1%} "
                f"invalid={self.invalid}")


def evaluate(task: Task, policy: Policy, problems: Sequence[Problem], config: ExecutionConfig,
             progress: bool = False) -> list[Trajectory]:
    executor = MTPExecutor(task, policy, config)
    if not progress:
        return executor.run(problems)
    from tqdm import tqdm

    with tqdm(total=len(problems), desc=f"{task.name} {config.mode}", unit="problem") as bar:
        return executor.run(problems, on_progress=lambda active, done: bar.update(done - bar.n))


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
