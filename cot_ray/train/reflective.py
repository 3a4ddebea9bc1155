"""Stage III data: the policy's own steps, each labelled by the expert verifier.

Paper stage III, with our decisions for what it leaves open (paper.md section 9, item 9):

1. **The walk.** The stage-II policy runs through the MTP on each training query at the solving
   temperature (0.75). It follows its own steps, right or wrong: the states it visits are the
   states it will meet at test time, its own mistakes included.
2. **Proposals.** At every state the walk visited, ``proposals`` more steps are sampled at the
   proposing temperature (paper: 1 for 1M models). They are not taken; they are the candidate
   steps a reflective policy must judge, many of them wrong in the ways this policy errs.
3. **Labels.** Every walk step and proposal is labelled by the expert verifier (binary or
   detailed). Correct steps are the majority and are capped at ``max_positive_share``.
4. For optional verification an equal number of empty-verification copies is added
   (paper section 1.4).
"""

from __future__ import annotations

import random
from typing import Any

from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.mtp.execute import samples_from
from cot_ray.tasks import Problem
from cot_ray.tokenizer import Tokenizer
from cot_ray.verify import ExpertVerifier


def label_steps(task_name: str, trajectories: list[Trajectory], detailed: bool) -> list[dict[str, Any]]:
    """One record per closed step: (state, step) and the expert's verification of it."""
    close = Tokenizer().step_close_id
    steps = [s for t in trajectories for s in t.steps if s.step_token_ids[-1:] == [close]]
    labels = ExpertVerifier().label_steps(task_name, steps, detailed=detailed)
    return [{"task": task_name, "state": s.state, "step": s.step, "verification": v.text(), "correct": v.ok}
            for s, v in zip(steps, labels)]


def balance(records: list[dict[str, Any]], max_positive_share: float, optional: bool,
            rng: random.Random) -> list[dict[str, Any]]:
    positives = [r for r in records if r["correct"]]
    negatives = [r for r in records if not r["correct"]]
    if negatives and max_positive_share < 1:
        cap = int(len(negatives) * max_positive_share / (1 - max_positive_share))
        positives = rng.sample(positives, min(cap, len(positives)))
    out = positives + negatives
    if optional:
        out += [{**r, "verification": ""} for r in rng.sample(out, len(out))]
    rng.shuffle(out)
    return out


def proposal_starts(walk: list[Trajectory], proposals: int) -> list[Problem]:
    """``proposals`` problems starting at each state the walk visited (before each valid step)."""
    return [p for t in walk for j, s in enumerate(t.steps) if s.valid
            for p in samples_from(t.problem, s.state, f"step{j}", proposals)]


def sample_verification_records(pool, task_name: str, problems: list[Problem], solve_temperature: float,
                                propose_temperature: float, proposals: int, verification: str,
                                max_positive_share: float, seed: int,
                                max_step_tokens: int = ExecutionConfig.max_step_tokens) -> list[dict[str, Any]]:
    """Walk, propose, label, balance; ``pool`` is anything with the rollout pool's ``run``."""
    detailed = verification in ("detailed", "optional")
    walk = pool.run(task_name, problems, ExecutionConfig(mode="mtp", plan_temperature=solve_temperature,
                                                         seed=seed, max_step_tokens=max_step_tokens))
    starts = proposal_starts(walk, proposals)
    proposed = pool.run(task_name, starts, ExecutionConfig(mode="mtp", step_budget=1, seed=seed + 1,
                                                           plan_temperature=propose_temperature,
                                                           max_step_tokens=max_step_tokens)) if starts else []
    records = label_steps(task_name, walk + proposed, detailed)
    return balance(records, max_positive_share, verification == "optional", random.Random(seed))
