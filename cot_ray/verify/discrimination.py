"""Does the verifier check the step, or judge the state? Discrimination at the same state.

e+ and e- say how often a verifier errs, not why. A verifier can reach a fair e+ by rejecting at
states that *look* hard, and then it rejects every revision there too, right or wrong: RMTP
spends its budget and gains nothing. What tells the two apart is ranking:

- **within-state AUC**: at held-out states holding both right and wrong proposals, the chance
  that the verifier's acceptance probability ranks a right proposal above a wrong one *at the same
  state* (0.5: it judges the state; 1: it checks the step). Over all such pairs.
- **pooled AUC**: the same over all (right, wrong) pairs of every state; it rewards judging the
  state too, so the gap between the two is how much of the verifier is a state prior.
- **greedy against samples**: the mean acceptance of right greedy steps and of right sampled steps
  at the same states. A verifier that accepts "what it would have written" rather than "what is
  right" accepts the first far more than the second, and that is what RMTP's revisions meet.

The acceptance probability is teacher-forced (:mod:`cot_ray.verify.scoring`): the chance the
verifier writes only ✓ after the step. Proposals come from one policy (the stage-II policy) so
that every verifier is measured on the very same steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.mtp.execute import samples_from
from cot_ray.mtp.trajectory import closed_steps
from cot_ray.stats import rank_pairs
from cot_ray.tasks import Problem, Task, step_is_right


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A step proposed at a held-out state, the expert's verdict, and whether it was the greedy
    step (``n_labels``: how many labels a detailed verification of it has)."""

    state: str
    step: str
    correct: bool
    greedy: bool
    n_labels: int


@dataclass(frozen=True, kw_only=True)
class Discrimination:
    """The figures of the module docstring (None where there is nothing to rank)."""

    within_state_auc: float | None
    pooled_auc: float | None
    states: int
    """States holding both a right and a wrong proposal."""
    proposals: int
    wrong: int
    greedy_right_acceptance: float | None
    sampled_right_acceptance: float | None
    wrong_acceptance: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def proposals_at(pool, task: Task, problems: Sequence[Problem], samples: int, temperature: float,
                 seed: int, detailed: bool) -> list[Proposal]:
    """At every state the policy's greedy MTP run visits: its greedy step and ``samples`` steps at
    ``temperature``, each labelled by the expert verifier (``pool``: anything with ``run``)."""
    greedy = pool.run(task.name, list(problems), ExecutionConfig(mode="mtp", seed=seed))
    starts = [p for t in greedy for j, s in enumerate(t.steps) if s.valid
              for p in samples_from(t.problem, s.state, f"judge{j}", samples)]
    sampled: list[Trajectory] = pool.run(task.name, starts, ExecutionConfig.single_step(seed + 1, temperature)) \
        if starts else []
    visited = {s.state for t in greedy for s in t.steps if s.valid}
    out = []
    for is_greedy, runs in ((True, greedy), (False, sampled)):
        for s in closed_steps(runs):
            if s.state in visited:
                v = task.verify(s.state, s.step, detailed=True)
                out.append(Proposal(state=s.state, step=s.step, correct=step_is_right(task, s.state, s.step),
                                    greedy=is_greedy, n_labels=len(v.labels) if detailed else 1))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def discrimination(proposals: Sequence[Proposal], acceptance: Sequence[float]) -> Discrimination:
    """The figures of the module docstring from proposals and the verifier's acceptance of each."""
    if len(proposals) != len(acceptance):
        raise ValueError(f"{len(proposals)} proposals but {len(acceptance)} acceptance probabilities")
    by_state: dict[str, list[tuple[Proposal, float]]] = {}
    for p, a in zip(proposals, acceptance):
        by_state.setdefault(p.state, []).append((p, a))
    wins = pairs = states = 0
    greedy_right, sampled_right = [], []
    for scored in by_state.values():
        right = [a for p, a in scored if p.correct]
        wrong = [a for p, a in scored if not p.correct]
        if right and wrong:
            w, n = rank_pairs(right, wrong)
            wins, pairs, states = wins + w, pairs + n, states + 1
            greedy_right += [a for p, a in scored if p.correct and p.greedy]
            sampled_right += [a for p, a in scored if p.correct and not p.greedy]
    all_right = [a for p, a in zip(proposals, acceptance) if p.correct]
    all_wrong = [a for p, a in zip(proposals, acceptance) if not p.correct]
    pooled_wins, pooled_pairs = rank_pairs(all_right, all_wrong)
    return Discrimination(within_state_auc=wins / pairs if pairs else None,
                          pooled_auc=pooled_wins / pooled_pairs if pooled_pairs else None,
                          states=states, proposals=len(proposals), wrong=len(all_wrong),
                          greedy_right_acceptance=_mean(greedy_right), sampled_right_acceptance=_mean(sampled_right),
                          wrong_acceptance=_mean(all_wrong))
