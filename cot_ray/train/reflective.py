"""Stage III data: the policy's own steps, each labelled by the expert verifier.

Paper stage III, with our decisions for what it leaves open (docs/decisions.md, stage III sampling):

1. **The walk.** The stage-II policy runs through the MTP on each training query at the solving
   temperature (0.75). It follows its own steps, right or wrong: the states it visits are the
   states it will meet at test time, its own mistakes included.
2. **Proposals.** At every state the walk visited, the policy's greedy step (what RMTP's first
   attempt writes) and ``proposals`` steps at the proposing temperature (what its revisions
   write). They are not taken; they are the candidate steps a reflective policy must judge.
3. **Labels.** Every walk step and proposal is labelled by the expert verifier (binary or
   detailed).
4. **Balance** (``balance``):

   - ``per-state``: every state carries as many ✓ as ✗ examples, so the state
     tells nothing about the label and only the step does. A side the policy left short is
     filled: ✓ with the expert's step, ✗ with a right step that has one element wrong
     (:meth:`Task.corrupt_step`), its kind drawn from the failure kinds of the policy's own
     wrong steps (``corruptions: every-kind``: one of every kind at every state, the ✓ side
     repeated to match, so every element's ✗ label is common, not the policy's rare product
     errors alone). Without this, at the states where the policy errs almost every sample is
     wrong, and a small verifier learns "this state is hard: reject", then rejects every
     revision there too (measured: 93-99.8% of right revisions rejected).
   - ``positive-cap`` (the default): the sampled steps as they come, correct ones capped at
     ``max_positive_share``. Measured on Mult at 1M (docs/results-history.md, 2026-12-03), the
     per-state recipe removed the state prior but taught no step check in its place (within-state
     AUC 0.54-0.60 against 0.58), and its rejections cost RMTP 9-18 points; this one costs nothing.
5. For optional verification an equal number of empty-verification copies is added
   (paper Sec. 5.2).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from cot_ray.config import ReflectiveConfig
from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.mtp.execute import samples_from
from cot_ray.mtp.trajectory import SampledStep, closed_steps
from cot_ray.tasks import Problem, Task, get_task

SOURCES = ("policy", "expert", "corruption")
"""Where a labelled step came from: the policy's own samples, the expert (a missing ✓), or a
corrupted right step (a missing ✗)."""
FAILURE_ALIASES = {"carry": "product"}
"""Failure kinds the diagnostics tell apart but one corruption kind covers."""


@dataclass(frozen=True, kw_only=True)
class LabelledStep:
    """One stage-III verification example: a step at a state and the expert's labels for it.
    ``kind`` names the corrupted element of a ``corruption`` (else "")."""

    task: str
    state: str
    step: str
    verification: str
    correct: bool
    source: str = "policy"
    kind: str = ""

    def row(self) -> dict[str, str | bool]:
        """The Parquet row (``data/reflective-<task>.parquet``)."""
        return asdict(self)


def proposal_starts(walk: list[Trajectory], proposals: int) -> list[Problem]:
    """``proposals`` problems starting at each state the walk visited (before each valid step)."""
    return [p for t in walk for j, s in enumerate(t.steps) if s.valid
            for p in samples_from(t.problem, s.state, f"step{j}", proposals)]


def sample_steps(pool, task_name: str, problems: Sequence[Problem], cfg: ReflectiveConfig,
                 max_step_tokens: int = ExecutionConfig.max_step_tokens) -> list[SampledStep]:
    """Walk, then propose at every visited state (greedy step for ``per-state``, and samples);
    ``pool`` is anything with the rollout pool's ``run``."""
    def run(starts: list[Problem], temperature: float, seed: int) -> list[Trajectory]:
        return pool.run(task_name, starts, ExecutionConfig(mode="mtp", step_budget=1, seed=seed,
                                                           plan_temperature=temperature,
                                                           max_step_tokens=max_step_tokens)) if starts else []

    walk = pool.run(task_name, list(problems), ExecutionConfig(mode="mtp", plan_temperature=cfg.solve_temperature,
                                                               seed=cfg.seed, max_step_tokens=max_step_tokens))
    proposed = run(proposal_starts(walk, cfg.proposals), cfg.propose_temperature, cfg.seed + 1)
    if cfg.balance == "per-state":
        proposed += run(proposal_starts(walk, 1), 0.0, cfg.seed + 2)
    return closed_steps(walk + proposed)


def label(task: Task, steps: Iterable[SampledStep], detailed: bool) -> list[LabelledStep]:
    """The expert verifier's labels of every sampled step."""
    out = []
    for s in steps:
        v = task.verify(s.state, s.step, detailed=detailed)
        out.append(LabelledStep(task=task.name, state=s.state, step=s.step, verification=v.text(), correct=v.ok))
    return out


def failure_kinds(task: Task, records: Iterable[LabelledStep]) -> Counter[str]:
    """How often each element kind is the first wrong one among the policy's wrong steps."""
    kinds: Counter[str] = Counter()
    for r in records:
        if not r.correct and (kind := task.diagnose(r.state, r.step)) is not None:
            kinds[FAILURE_ALIASES.get(kind, kind)] += 1
    return kinds


def _corruption(task: Task, pos: LabelledStep, weights: Counter[str], detailed: bool, taken: set[str],
                rng: random.Random) -> LabelledStep | None:
    """A new wrong step at ``pos``'s state: ``pos.step`` with one element wrong, the kind drawn
    by ``weights`` (plus one, so that every kind the policy never got wrong still appears)."""
    kinds = list(task.corruption_kinds(pos.step))
    while kinds:
        kind = rng.choices(kinds, weights=[weights[k] + 1 for k in kinds])[0]
        if (fill := _corrupted(task, pos, kind, detailed, taken, rng)) is not None:
            return fill
        kinds.remove(kind)
    return None


def _corrupted(task: Task, pos: LabelledStep, kind: str, detailed: bool, taken: set[str],
               rng: random.Random) -> LabelledStep | None:
    """``pos.step`` with one element of ``kind`` wrong, labelled; None if it has none or it is taken."""
    step = task.corrupt_step(pos.state, pos.step, kind, rng)
    if step is None or step in taken:
        return None
    v = task.verify(pos.state, step, detailed=detailed)
    return LabelledStep(task=task.name, state=pos.state, step=step, verification=v.text(), correct=False,
                        source="corruption", kind=kind)


def _expert(task: Task, state: str, problem: Problem | None, detailed: bool) -> LabelledStep | None:
    """The expert's step at ``state``, labelled; None when the state cannot be finished."""
    step = task.expert_step(state, problem)
    v = task.verify(state, step, detailed=detailed)
    return LabelledStep(task=task.name, state=state, step=step, verification=v.text(), correct=True,
                        source="expert") if v.ok else None


def balance_per_state(task: Task, records: Sequence[LabelledStep], detailed: bool, rng: random.Random,
                      problem_at: dict[str, Problem] | None = None, every_kind: bool = False) -> list[LabelledStep]:
    """Equal ✓ and ✗ examples at every state (module docstring, item 4): distinct steps only, a
    missing ✓ side filled by the expert, a short ✗ side by corruptions (``every_kind``: one
    corruption of every kind of a right step first), then the smaller side repeated until both
    are the same size."""
    weights = failure_kinds(task, records)
    by_state: dict[str, dict[str, LabelledStep]] = {}
    for r in records:
        by_state.setdefault(r.state, {}).setdefault(r.step, r)
    out: list[LabelledStep] = []
    for state, distinct in by_state.items():
        pos = [r for r in distinct.values() if r.correct]
        neg = [r for r in distinct.values() if not r.correct]
        if not pos and (expert := _expert(task, state, (problem_at or {}).get(state), detailed)) is not None:
            pos = [expert]
        for kind in task.corruption_kinds(pos[0].step) if every_kind and pos else ():
            if (wrong := _corrupted(task, pos[0], kind, detailed, set(distinct), rng)) is not None:
                distinct[wrong.step] = wrong
                neg.append(wrong)
        while pos and len(neg) < len(pos):
            fill = _corruption(task, pos[len(neg) % len(pos)], weights, detailed, set(distinct), rng)
            if fill is None:
                break
            distinct[fill.step] = fill
            neg.append(fill)
        k = max(len(pos), len(neg)) if pos and neg else 0
        out += [pos[i % len(pos)] for i in range(k)] + [neg[i % len(neg)] for i in range(k)]
    return out


def cap_positives(records: list[LabelledStep], max_positive_share: float, rng: random.Random) -> list[LabelledStep]:
    """The ``positive-cap`` balance: the correct steps capped at ``max_positive_share``."""
    positives = [r for r in records if r.correct]
    negatives = [r for r in records if not r.correct]
    if negatives and max_positive_share < 1:
        cap = int(len(negatives) * max_positive_share / (1 - max_positive_share))
        positives = rng.sample(positives, min(cap, len(positives)))
    return positives + negatives


def verification_records(task_name: str, steps: Sequence[SampledStep], cfg: ReflectiveConfig,
                         verification: str | None = None) -> list[LabelledStep]:
    """Label and balance sampled steps as ``cfg`` says (``verification`` overrides its kind, so
    one sample can be labelled both ways); shuffled, with optional-verification copies."""
    task = get_task(task_name)
    kind = verification or cfg.verification
    detailed = kind in ("detailed", "optional")
    rng = random.Random(cfg.seed)
    records = label(task, steps, detailed)
    if cfg.balance == "per-state":
        records = balance_per_state(task, records, detailed, rng, {s.state: s.problem for s in steps},
                                    every_kind=cfg.corruptions == "every-kind")
    else:
        records = cap_positives(records, cfg.max_positive_share, rng)
    if kind == "optional":
        records += [replace(r, verification="") for r in rng.sample(records, len(records))]
    rng.shuffle(records)
    return records


def sample_verification_records(pool, task_name: str, problems: Sequence[Problem], cfg: ReflectiveConfig,
                                max_step_tokens: int = ExecutionConfig.max_step_tokens) -> list[LabelledStep]:
    """Walk, propose, label, balance: the whole of stage III's data for one task."""
    return verification_records(task_name, sample_steps(pool, task_name, problems, cfg, max_step_tokens), cfg)
