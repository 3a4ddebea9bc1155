"""The oracle side of training: the expert verifier (ground-truth step labels) and the reward model.

Stage III needs ground-truth verifications of sampled steps, stage IV needs the binary outcome
reward ORM(Q, A) and, optionally, the oracle PRM that cuts a trajectory at its first clear error
(paper Sec. 3.3, App. B). Both are plain Python classes that score whole batches, so the same
code runs in-process, inside a Ray actor (:func:`actor_class`) and behind the Serve endpoint
(:mod:`cot_ray.verify.serve`). Ray is imported only when an actor class is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cot_ray.mtp.trajectory import StepRecord, Trajectory
from cot_ray.tasks import TASKS, Problem, Task, Verification


class ExpertVerifier:
    """Ground-truth verification (binary or detailed) of steps of any known task."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {name: cls() for name, cls in TASKS.items()}

    def task(self, name: str) -> Task:
        """The task called ``name``; a ``ValueError`` naming the known tasks otherwise."""
        if name not in self.tasks:
            raise ValueError(f"unknown task {name!r}; expected one of {', '.join(self.tasks)}")
        return self.tasks[name]

    def verify(self, task: str, state: str, step: str, detailed: bool = False) -> Verification:
        """Labels for ``step`` taken at ``state``.

        A malformed step is a wrong step (labelled ✗), since that is what a policy wrote; a
        malformed state is a caller's error (``ValueError``), since states come from T, never
        from a policy.
        """
        t = self.task(task)
        if (error := t.validate_state(state)) is not None:
            raise ValueError(error)
        return t.verify(state, step, detailed=detailed)

    def verify_batch(self, items: Iterable[Mapping[str, Any]]) -> list[Verification]:
        """One verification per ``{task, state, step, detailed?}`` item, in order."""
        return [self.verify(it["task"], it["state"], it["step"], bool(it.get("detailed", False))) for it in items]

    def label_steps(self, task: str, steps: Iterable[StepRecord], detailed: bool = False) -> list[Verification]:
        """Ground truth for recorded steps (accepted or rejected) of a run on ``task``."""
        t = self.task(task)
        return [t.verify(s.state, s.step, detailed=detailed) for s in steps]


class RewardModel:
    """The stage-IV reward: ORM(Q, A) = 1 for a correct final answer, else 0; no process rewards.

    The answer is re-checked against the problem rather than read from ``Trajectory.correct``,
    so the reward does not trust whoever produced the trajectory.
    """

    def __init__(self) -> None:
        self.verifier = ExpertVerifier()

    def outcome(self, problem: Problem, predicted: str | None) -> float:
        """1.0 if ``predicted`` is a correct answer to ``problem``; no answer scores 0."""
        if predicted is None:
            return 0.0
        return float(self.verifier.task(problem.task).check_answer(problem, predicted))

    def reward(self, trajectory: Trajectory) -> float:
        return self.outcome(trajectory.problem, trajectory.answer)

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[float]:
        return [self.reward(t) for t in trajectories]

    def first_error(self, trajectory: Trajectory) -> int | None:
        """Early truncation (paper App. B.3): the index of the first accepted step that the
        oracle verifier rejects (step truth, :func:`cot_ray.tasks.step_is_right`), or None if
        every accepted step is right. (The evaluation's failure analysis is another question,
        the kind of the first wrong element: :func:`cot_ray.evaluate.first_failure`.)

        Rejected steps do not move the state, so only accepted ones can ruin a run. In the MTP
        and the RMTP (what RL samples) no correct answer can follow that step, so RL keeps
        ``steps[: index + 1]`` with reward 0 instead of punishing the locally correct steps that
        come later. (RTBS can trace back out of an accepted error, so there it is not final.)
        """
        return self.score(trajectory).first_error

    def first_errors(self, trajectories: Sequence[Trajectory]) -> list[int | None]:
        return [self.first_error(t) for t in trajectories]

    def score(self, trajectory: Trajectory) -> Score:
        """The reward, the first error and the expert's verdict on every step, from one pass of
        the verifier over the steps (stage IV needs all three for every trajectory)."""
        truth = tuple(v.ok for v in self.verifier.label_steps(trajectory.problem.task, trajectory.steps))
        first = next((i for i, (s, ok) in enumerate(zip(trajectory.steps, truth)) if not s.rejected and not ok), None)
        return Score(reward=self.reward(trajectory), first_error=first, truth=truth)

    def scores(self, trajectories: Sequence[Trajectory]) -> list[Score]:
        return [self.score(t) for t in trajectories]


@dataclass(frozen=True, kw_only=True)
class Score:
    """What the reward actor says about one trajectory: its outcome reward, the index of its
    first accepted wrong step (:meth:`RewardModel.first_error`) and, for each step, whether the
    expert verifier finds it right (``truth``: what e+/e- compare the policy's verifications with)."""

    reward: float
    first_error: int | None = None
    truth: tuple[bool, ...] = ()


MAX_RESTARTS = 3
"""The scorer actors' restart budget (Ray's ``max_restarts`` and ``max_task_retries``): a dead one
is restarted (they hold no state) and the calls it was running are retried. Whether a deliberate
``ray.kill`` counts against the budget was not consistent in tests, so only the restart is tested;
a bounded budget under kills is still open (the chaos issue)."""


def actor_class(scorer: type, num_cpus: float = 1.0) -> Any:
    """``ray.remote`` around a scorer class (``ExpertVerifier`` or ``RewardModel``), for the
    stage-III and stage-IV workers: ``actor_class(RewardModel).remote()``. A killed actor comes
    back and its calls are redone (:data:`MAX_RESTARTS`).

    Ray is imported here, not at module level, so the scoring code stays usable without it.
    """
    import ray

    return ray.remote(num_cpus=num_cpus, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(scorer)
