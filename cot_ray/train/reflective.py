"""Stage III data: sample CoTs from the policy through the MTP, label every step with the expert.

The policy walks its own path (it is not corrected back to the expert's), once per query at each
configured temperature (the paper's solving temperature 0.75 and a higher proposing one); every
proposed step it writes is labelled by the expert verifier. Wrong steps are the scarce, useful
examples, so correct ones are capped at ``max_positive_share``. For optional verification an
equal number of empty-verification copies is added (paper section 1.4).
"""

from __future__ import annotations

import random
from typing import Any

from cot_ray.mtp import ExecutionConfig, Trajectory
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


def sample_verification_records(pool, task_name: str, problems: list[Problem], temperatures: list[float],
                                verification: str, max_positive_share: float, seed: int,
                                max_step_tokens: int = 384) -> list[dict[str, Any]]:
    """Sample with the rollout pool (vLLM workers), label, balance."""
    detailed = verification in ("detailed", "optional")
    records: list[dict[str, Any]] = []
    for k, temperature in enumerate(temperatures):
        cfg = ExecutionConfig(mode="mtp", plan_temperature=temperature, revision_temperature=temperature,
                              seed=seed + k, max_step_tokens=max_step_tokens)
        records += label_steps(task_name, pool.run(task_name, problems, cfg), detailed)
    return balance(records, max_positive_share, verification == "optional", random.Random(seed))
