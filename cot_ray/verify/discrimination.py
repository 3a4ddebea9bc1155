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

- **by kind** (:func:`by_kind`): the within-state AUC of right steps against wrong ones whose
  first wrong element is of one kind (a Mult copy, product, sum...; a Sudoku clash): which
  elements the verifier checks. :func:`expert_probes` gives controlled pairs for it: at every
  state of the expert's path, the expert's step and one corruption of each kind, one element apart.

The acceptance probability is teacher-forced (:mod:`cot_ray.verify.scoring`): the chance the
verifier writes only ✓ after the step. Proposals come from one policy (the stage-II policy) or
from the expert, so that every verifier is measured on the very same steps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.mtp.execute import samples_from
from cot_ray.mtp.trajectory import closed_steps
from cot_ray.stats import rank_pairs
from cot_ray.tasks import Problem, Task, step_is_right


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A step proposed at a held-out state, the expert's verdict, and whether it was the greedy
    step (``n_labels``: how many labels a detailed verification of it has, ``marks``: what a
    marked verification writes before each label; scoring decodes the verifier's own marks where
    the truth has them: :mod:`cot_ray.verify.scoring`)."""

    state: str
    step: str
    correct: bool
    greedy: bool
    n_labels: int
    marks: tuple[str, ...] = ()
    kind: str | None = None
    """A wrong step's first wrong element (``Task.diagnose``, or the corruption's kind); None if right."""
    first_wrong: int | None = None
    """Detailed: the index of the wrong step's first ✗ label (None if right, or binary)."""


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
    return [_proposal(task, s.state, s.step, detailed, greedy=is_greedy)
            for is_greedy, runs in ((True, greedy), (False, sampled)) for s in closed_steps(runs) if s.state in visited]


def _proposal(task: Task, state: str, step: str, detailed: bool, greedy: bool = False,
              kind: str | None = None) -> Proposal:
    correct = step_is_right(task, state, step)
    return Proposal(state=state, step=step, correct=correct, greedy=greedy, **_labels(task, state, step, detailed),
                    kind=None if correct else kind or task.diagnose(state, step))


def _labels(task: Task, state: str, step: str, detailed: bool) -> dict:
    if not detailed:
        return {"n_labels": 1, "marks": (), "first_wrong": None}
    truth = task.verify(state, step, detailed=True)
    first = None if truth.ok else truth.labels.index(False)
    return {"n_labels": len(truth.labels), "marks": truth.marks, "first_wrong": first}


def labelled_as(task: Task, proposals: Sequence[Proposal], detailed: bool) -> list[Proposal]:
    """The same proposals with the labels (and marks) of ``task``'s verification, binary or
    detailed: one set of steps, ranked by verifiers trained on different verification formats."""
    return [replace(p, **_labels(task, p.state, p.step, detailed)) for p in proposals]


def expert_probes(task: Task, problems: Sequence[Problem], rng: random.Random, detailed: bool) -> list[Proposal]:
    """At every state of the expert's path through each problem: the expert's step and, for each
    corruption kind the step allows, that step with one element of that kind wrong. Pairs one
    element apart at one state, free of the policy's own mix of errors: :func:`by_kind` on them
    says which elements a verifier checks."""
    out = []
    for problem in problems:
        state: str | None = task.initial_state(problem)
        while state is not None:
            step = task.expert_step(state, problem)
            out.append(_proposal(task, state, step, detailed))
            for kind in task.corruption_kinds(step):
                if (wrong := task.corrupt_step(state, step, kind, rng)) is not None:
                    out.append(_proposal(task, state, wrong, detailed, kind=kind))
            state = task.transition(state, step).next_state
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclass(frozen=True, kw_only=True)
class KindDiscrimination:
    """How well a verifier sees one kind of wrong element (:func:`by_kind`)."""

    kind: str
    within_state_auc: float
    pairs: int
    """(right, wrong-of-this-kind) pairs at the same state."""
    wrong_acceptance: float
    """Mean acceptance of the wrong steps of this kind in those pairs."""


def by_kind(proposals: Sequence[Proposal], acceptance: Sequence[float]) -> list[KindDiscrimination]:
    """Within-state AUC of right steps against the wrong steps of each kind at the same states,
    kinds in order of first appearance."""
    if len(proposals) != len(acceptance):
        raise ValueError(f"{len(proposals)} proposals but {len(acceptance)} acceptance probabilities")
    right: dict[str, list[float]] = {}
    wrong: dict[str, dict[str, list[float]]] = {}
    for p, a in zip(proposals, acceptance):
        if p.correct:
            right.setdefault(p.state, []).append(a)
        else:
            wrong.setdefault(p.kind or "other", {}).setdefault(p.state, []).append(a)
    out = []
    for kind, states in wrong.items():
        wins = pairs = 0.0
        seen: list[float] = []
        for state, scores in states.items():
            if state in right:
                w, n = rank_pairs(right[state], scores)
                wins, pairs = wins + w, pairs + n
                seen += scores
        if pairs:
            out.append(KindDiscrimination(kind=kind, within_state_auc=wins / pairs, pairs=int(pairs),
                                          wrong_acceptance=sum(seen) / len(seen)))
    return out


def at_wrong_element(proposals: Sequence[Proposal], label_acceptance: Sequence[Sequence[float]]
                     ) -> list[KindDiscrimination]:
    """Per kind: at the same state, does the verifier doubt the wrong element itself? The chance
    that P(✓) at a wrong step's first ✗ label is below P(✓) at the same label of a right step
    (detailed verification; pairs where both steps have that label). Unlike :func:`by_kind`
    it does not depend on how many labels a step has, and it says whether a verifier reads the
    element or only sits at a position's prior (P(✓) alike for the two)."""
    right: dict[str, list[Sequence[float]]] = {}
    for p, probs in zip(proposals, label_acceptance):
        if p.correct:
            right.setdefault(p.state, []).append(probs)
    wins: dict[str, list[float]] = {}
    seen: dict[str, list[float]] = {}
    for p, probs in zip(proposals, label_acceptance):
        i = p.first_wrong
        if p.correct or i is None:
            continue
        others = [r[i] for r in right.get(p.state, []) if i < len(r)]
        if others and i < len(probs):  # a decoded verification may write fewer labels
            w, n = rank_pairs(others, [probs[i]])
            wins.setdefault(p.kind or "other", []).extend([w, n])
            seen.setdefault(p.kind or "other", []).append(probs[i])
    return [KindDiscrimination(kind=k, within_state_auc=sum(v[::2]) / sum(v[1::2]), pairs=int(sum(v[1::2])),
                               wrong_acceptance=sum(seen[k]) / len(seen[k])) for k, v in wins.items()]


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
