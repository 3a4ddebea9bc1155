"""Stage III data: the policy's own steps, each labelled by the expert verifier.

Paper stage III, with our decisions for what it leaves open (docs/decisions.md, stage III sampling):

1. **The walk.** The stage-II policy runs through the MTP on each training query at the solving
   temperature (0.75). It follows its own steps, right or wrong: the states it visits are the
   states it will meet at test time, its own mistakes included.
2. **Proposals.** At every state the walk visited, ``proposals`` more steps are sampled at the
   proposing temperature (paper: 1 for 1M models). They are not taken; they are the candidate
   steps a reflective policy must judge, many of them wrong in the ways this policy errs.
3. **Labels.** Every walk step and proposal is labelled by the expert verifier (binary or
   detailed). Correct steps are the majority and are capped at ``max_positive_share``.
4. **Same-state pairs** (``expert_pairs``). At every state where a sampled step was wrong, the
   expert's step is added, labelled correct. Without it, the states where the policy errs carry
   almost only wrong steps, and a small verifier learns to judge the state ("this state is hard:
   reject") instead of the step, so it rejects every revision there too.
5. For optional verification an equal number of empty-verification copies is added
   (paper Sec. 5.2).
"""

from __future__ import annotations

import random
from typing import Any

from cot_ray.mtp import ExecutionConfig, Trajectory
from cot_ray.mtp.execute import samples_from
from cot_ray.tasks import Problem, get_task
from cot_ray.tokenizer import Tokenizer
from cot_ray.verify import ExpertVerifier


def label_steps(task_name: str, trajectories: list[Trajectory], detailed: bool) -> list[dict[str, Any]]:
    """One record per closed step the policy wrote: (state, step) and the expert's verification of it."""
    close = Tokenizer().step_close_id
    steps = [s for t in trajectories for s in t.steps if s.step_token_ids[-1:] == [close]]
    labels = ExpertVerifier().label_steps(task_name, steps, detailed=detailed)
    return [{"task": task_name, "state": s.state, "step": s.step, "verification": v.text(), "correct": v.ok,
             "source": "policy"} for s, v in zip(steps, labels)]


def expert_partners(task_name: str, records: list[dict[str, Any]], detailed: bool,
                    problem_at: dict[str, Problem] | None = None) -> list[dict[str, Any]]:
    """The expert's step, labelled correct, at every state where a labelled step was wrong
    (``problem_at`` maps a state to its problem, which spares the Sudoku expert a search)."""
    task = get_task(task_name)
    out = []
    for state in dict.fromkeys(r["state"] for r in records if not r["correct"]):
        step = task.expert_step(state, (problem_at or {}).get(state))
        label = task.verify(state, step, detailed=detailed)
        if label.ok:  # always, unless the state itself cannot be finished (an unsolvable board)
            out.append({"task": task_name, "state": state, "step": step, "verification": label.text(),
                        "correct": True, "source": "expert"})
    return out


def balance(records: list[dict[str, Any]], max_positive_share: float, optional: bool,
            rng: random.Random) -> list[dict[str, Any]]:
    """Cap the correct steps at ``max_positive_share``; expert partners are kept first."""
    positives = [r for r in records if r["correct"]]
    negatives = [r for r in records if not r["correct"]]
    if negatives and max_positive_share < 1:
        cap = int(len(negatives) * max_positive_share / (1 - max_positive_share))
        pairs = [r for r in positives if r["source"] == "expert"][:cap]
        rest = [r for r in positives if r["source"] != "expert"]
        positives = pairs + rng.sample(rest, min(cap - len(pairs), len(rest)))
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
                                max_positive_share: float, seed: int, expert_pairs: bool = False,
                                max_step_tokens: int = ExecutionConfig.max_step_tokens) -> list[dict[str, Any]]:
    """Walk, propose, label, pair, balance; ``pool`` is anything with the rollout pool's ``run``."""
    detailed = verification in ("detailed", "optional")
    walk = pool.run(task_name, problems, ExecutionConfig(mode="mtp", plan_temperature=solve_temperature,
                                                         seed=seed, max_step_tokens=max_step_tokens))
    starts = proposal_starts(walk, proposals)
    proposed = pool.run(task_name, starts, ExecutionConfig(mode="mtp", step_budget=1, seed=seed + 1,
                                                           plan_temperature=propose_temperature,
                                                           max_step_tokens=max_step_tokens)) if starts else []
    records = label_steps(task_name, walk + proposed, detailed)
    if expert_pairs:
        problem_at = {s.state: t.problem for t in walk + proposed for s in t.steps}
        records += expert_partners(task_name, records, detailed, problem_at)
    return balance(records, max_positive_share, verification == "optional", random.Random(seed))
