"""How well a policy verifies its own steps: e+ and e- (paper Tables 6 and 9).

The policy's verification of each step (``StepRecord.verification``) is compared with the expert
verifier's ground truth for the same step:

- e+ (false-positive rate): the share of wrong steps the policy accepted;
- e- (false-negative rate): the share of right steps the policy rejected.

(Reflection frequency, how often the policy verifies at all, is a property of the trajectories:
:func:`cot_ray.mtp.trajectory.reflection_frequency`.)

As in the paper, e+ and e- are averaged over reasoning states and count only the first attempt
at each state (``attempt == 0``), so a policy stuck repeating one error at one state does not
weigh more than any other state. Only steps with a non-empty verification count (an empty or
missing one is no judgement). A verification rejects a step by the executor's own rule
(:func:`cot_ray.mtp.transition.rejects`: any ✗). "Wrong" is the expert verifier's local
judgement of the step at its state, as the oracle the paper uses.

Counts are returned with the rates so evaluations of many shards can be added up.

:func:`rejections_by_truth` splits the same judgements by what the step really was: sound, a
broken rule (any element the expert verifier flags), or a wrong guess (rule-consistent, so the
expert verifier passes it, but a dead end: Sudoku, paper App. D.2.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from cot_ray.evaluate import step_fault
from cot_ray.mtp.trajectory import StepRecord, Trajectory
from cot_ray.mtp.transition import rejects
from cot_ray.tasks import Task, step_is_right
from cot_ray.verify.verifier import ExpertVerifier

TRUTHS = ("sound", "broken", "wrong-guess")
"""What a judged step really was, in :func:`rejections_by_truth`."""


@dataclass(frozen=True)
class VerificationCounts:
    """Raw counts behind e+ and e-; add them to aggregate."""

    wrong: int = 0
    wrong_accepted: int = 0
    right: int = 0
    right_rejected: int = 0

    def __add__(self, other: VerificationCounts) -> VerificationCounts:
        return VerificationCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    @property
    def e_plus(self) -> float | None:
        """False-positive rate; None when no first-attempt wrong step was verified."""
        return self.wrong_accepted / self.wrong if self.wrong else None

    @property
    def e_minus(self) -> float | None:
        """False-negative rate; None when no first-attempt right step was verified."""
        return self.right_rejected / self.right if self.right else None

    def to_dict(self) -> dict[str, int | float | None]:
        """Counts and rates, JSON-able (undefined rates are null)."""
        return {**asdict(self), "e_plus": self.e_plus, "e_minus": self.e_minus}


def verification_counts(trajectories: Iterable[Trajectory], detailed: bool = False,
                        verifier: ExpertVerifier | None = None, revisions: bool = False) -> VerificationCounts:
    """Compare each trajectory's own verifications with the expert's.

    ``detailed`` picks the ground truth the policy is judged against (a detailed verifier can
    be right about the new state yet miss a wrong intermediate product, which binary truth
    would not count as an error). ``revisions`` counts the attempts after a rejection instead
    of first attempts (revision samples come from another temperature, and another situation).
    """
    verifier = verifier or ExpertVerifier()
    total = VerificationCounts()
    for traj in trajectories:
        total += _counts(traj, detailed, verifier, revisions)
    return total


def _is_judged(s: StepRecord, revisions: bool) -> bool:
    return (s.attempt > 0 if revisions else s.attempt == 0) and bool(s.verification)


def _counts(traj: Trajectory, detailed: bool, verifier: ExpertVerifier, revisions: bool) -> VerificationCounts:
    judged = [s for s in traj.steps if _is_judged(s, revisions)]
    task = verifier.task(traj.problem.task)
    truth = [step_is_right(task, s.state, s.step, detailed) for s in judged]
    return _tally(judged, truth)


def step_counts(steps: list[StepRecord], truth: Sequence[bool]) -> VerificationCounts:
    """The counts of one run's first-attempt steps, given the expert's binary verdict on every
    step (``truth[i]``: step i is right), e.g. a :class:`~cot_ray.verify.verifier.Score`'s: no
    second pass of the verifier."""
    pairs = [(s, ok) for s, ok in zip(steps, truth) if _is_judged(s, False)]
    return _tally([s for s, _ in pairs], [ok for _, ok in pairs])


def _tally(judged: list[StepRecord], truth: list[bool]) -> VerificationCounts:
    rejected = [rejects(s.verification) for s in judged]
    right = [r for r, ok in zip(rejected, truth) if ok]
    wrong = [not r for r, ok in zip(rejected, truth) if not ok]
    return VerificationCounts(wrong=len(wrong), wrong_accepted=sum(wrong), right=len(right),
                              right_rejected=sum(right))


def truth_kind(task: Task, step: StepRecord) -> str:
    """"broken" when the expert verifier flags any element of the step (or T cannot read it),
    "wrong-guess" when it breaks no rule but leads nowhere (tasks with ``dead_end``), else "sound"."""
    if step_fault(task, step) is not None:
        return "broken"
    dead_end = getattr(task, "dead_end", None)
    return "wrong-guess" if dead_end is not None and dead_end(step.state, step.step) else "sound"


def rejections_by_truth(task: Task, trajectories: Iterable[Trajectory]) -> dict[str, list[int]]:
    """truth -> [rejected, judged] over first-attempt steps that carry a verification.

    Splits e+ into the errors a rule check sees (broken: e+ = 1 - rejected share) and those it
    cannot (wrong guesses), and gives e- on the sound steps only."""
    out = {truth: [0, 0] for truth in TRUTHS}
    for traj in trajectories:
        for s in traj.steps:
            if s.attempt == 0 and s.verification:
                cell = out[truth_kind(task, s)]
                cell[0] += rejects(s.verification)
                cell[1] += 1
    return out
