"""Evaluation: run a policy through MTP/RMTP/RTBS and summarise what happened.

The per-problem records and the summary fields are what ``cot-ray eval`` writes and what the
report tables are built from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cot_ray import atomic
from cot_ray.mtp import ExecutionConfig, MTPExecutor, Policy, StepRecord, Trajectory
from cot_ray.mtp.trajectory import reflection_frequency
from cot_ray.rollout.units import RolloutRequest
from cot_ray.stats import wilson
from cot_ray.tasks import Problem, Task, question_key


def make_problems(task: Task, difficulty: str, n: int, seed: int) -> list[Problem]:
    """The test set: the first ``n`` problems of the held-out ``test`` stream (see
    :mod:`cot_ray.data.splits`; training streams never contain them)."""
    from cot_ray.data.splits import problems

    return problems(task, difficulty, n, seed, "test")


def step_fault(task: Task, step: StepRecord) -> str | None:
    """The kind of the first wrong element of a recorded step (``task.diagnose``; "format" when T
    could not read it), or None when every element is right: what failure analysis, the planning
    ability mu and the rejections by truth count as a wrong step. It is finer than step truth
    (:func:`cot_ray.tasks.step_is_right`, the binary verdict): a Mult step with a wrong carry but
    the right new state is a fault here and right there."""
    return task.diagnose(step.state, step.step) if step.valid else "format"


def first_failure(traj: Trajectory, task: Task) -> tuple[str | None, int | None]:
    """The fault of the first faulty accepted step and its index among accepted steps (None, None
    when every accepted step is right): where the policy's own chain goes wrong, which the
    accuracy alone hides. Rejected proposals are skipped: the run never took them. (The reward's
    early truncation point is :meth:`cot_ray.verify.RewardModel.first_error`.)"""
    accepted = (s for s in traj.steps if not s.rejected)
    return next(((kind, i) for i, s in enumerate(accepted) if (kind := step_fault(task, s)) is not None),
                (None, None))


@dataclass(frozen=True, kw_only=True)
class EvalRow:
    """One problem's evaluation: a line of ``cot-ray eval``'s JSONL (what the report tables read)."""

    question: str
    difficulty: str
    answer: str
    predicted: str | None
    correct: bool
    steps: int
    reflections: int
    rejections: int
    backtracks: int
    finish: str
    tokens: int
    first_error: str | None
    first_error_step: int | None


def record(traj: Trajectory, task: Task) -> EvalRow:
    """The evaluation row of one trajectory, with its first error (:func:`first_failure`)."""
    kind, index = first_failure(traj, task)
    return EvalRow(
        question=question_key(traj.problem.question),
        difficulty=traj.problem.difficulty,
        answer=traj.problem.answer,
        predicted=traj.answer,
        correct=traj.correct,
        steps=len(traj.steps),
        reflections=traj.n_reflections,
        rejections=traj.n_rejections,
        backtracks=sum(s.backtrack for s in traj.steps),
        finish=traj.finish,
        tokens=traj.n_tokens,
        first_error=kind,
        first_error_step=index,
    )


@dataclass(frozen=True)
class Summary:
    """Aggregates of one evaluation; ``ci_low``/``ci_high`` bound the accuracy (95% Wilson), so
    readers see how much of a gap between two summaries is sampling noise."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_steps: float
    reflection_frequency: float
    rejection_rate: float
    invalid: int
    backtracked: int

    @classmethod
    def of(cls, trajectories: Sequence[Trajectory]) -> Summary:
        n = len(trajectories)
        correct = sum(t.correct for t in trajectories)
        steps = sum(len(t.steps) for t in trajectories)
        low, high = wilson(correct, n)
        return cls(
            n=n,
            correct=correct,
            accuracy=correct / max(n, 1),
            ci_low=low,
            ci_high=high,
            mean_steps=steps / max(n, 1),
            reflection_frequency=reflection_frequency(trajectories) or 0.0,
            rejection_rate=sum(t.n_rejections for t in trajectories) / max(steps, 1),
            invalid=sum(t.finish == "invalid" for t in trajectories),
            backtracked=sum(any(s.backtrack for s in t.steps) for t in trajectories),
        )

    def line(self) -> str:
        return (f"n={self.n} accuracy={self.accuracy:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}] "
                f"steps={self.mean_steps:.2f} reflection={self.reflection_frequency:.1%} "
                f"rejected={self.rejection_rate:.1%} invalid={self.invalid}")


def evaluate(task: Task, policy: Policy, problems: Sequence[Problem], config: ExecutionConfig,
             progress: bool = False) -> list[Trajectory]:
    executor = MTPExecutor(task, policy, config)
    if not progress:
        return executor.run(problems)
    from tqdm import tqdm

    with tqdm(total=len(problems), desc=f"{task.name} {config.mode}", unit="problem") as bar:
        return executor.run(problems, on_progress=lambda active, done: bar.update(done - bar.n))


class LocalPool:
    """The rollout pool's ``run`` and ``run_many`` on one in-process executor (no Ray): for code written against
    the pool (stage-III sampling, reflection diagnostics) driven by a local policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def run(self, task_name: str, problems: Sequence[Problem], config: ExecutionConfig,
            unit_size: int | None = None) -> list[Trajectory]:
        from cot_ray.tasks import get_task

        return MTPExecutor(get_task(task_name), self.policy, config).run(problems)

    def run_many(self, requests: Sequence[RolloutRequest], unit_size: int | None = None) -> list[list[Trajectory]]:
        return [self.run(r.task, r.problems, r.config) for r in requests]


def write_jsonl(path: str | Path, rows: Iterable[EvalRow]) -> Path:
    """The rows as JSONL, one object per line, written atomically (:mod:`cot_ray.atomic`)."""
    return atomic.write_jsonl(path, (asdict(row) for row in rows))
