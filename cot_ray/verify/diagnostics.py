"""Why reflection helps or not: the quantities of Theorem 1, measured on a policy's own runs.

RMTP accuracy follows from three numbers (paper section 4): the planning ability mu, and the
verifier's e- and e+. Given them, Theorem 1 predicts RMTP accuracy (with unlimited retries)
as the mean over problems of ``(mu(1-e-) / (mu(1-e-) + (1-mu)e+))^n``, n the problem's number
of steps. Beside the measured RMTP accuracy this tells where a gap comes from:

- **mu** from the greedy MTP runs: the share of right steps among the steps taken up to and
  including the first wrong one (the states before it are all positive);
- **e+ / e-** from the RMTP runs, on first attempts (the paper's definition) and separately on
  revision samples (attempts after a rejection, sampled at the revision temperature);
- **pass@k**: at the states where the greedy step was wrong, how often k revision samples hold a
  right one. Theorem 1 assumes a retry is as good as a first attempt; pass@k shows whether the
  policy can find the right step at all by resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

from cot_ray.evaluate import step_fault
from cot_ray.mtp.execute import samples_from
from cot_ray.mtp.theory import rmtp_accuracy
from cot_ray.mtp.trajectory import Trajectory
from cot_ray.tasks import Problem, Task
from cot_ray.verify.metrics import verification_counts

PASS_AT = (1, 4, 16)
"""The k of pass@k reported; the largest is the number of revision samples drawn per state."""


def planning_ability(task: Task, mtp: Sequence[Trajectory]) -> tuple[float | None, list[int]]:
    """(mu, steps per problem): mu over the greedy steps up to each run's first wrong one; the
    expert's number of steps for each problem (the scale n of the theory)."""
    from cot_ray.data.corpus import expert_trace

    right = judged = 0
    for t in mtp:
        for s in t.steps:
            judged += 1
            if step_fault(task, s) is not None:
                break
            right += 1
    steps = [len(expert_trace(task, t.problem)) for t in mtp]
    return (right / judged if judged else None), steps


def theorem1_rmtp(mu: float | None, e_minus: float | None, e_plus: float | None, steps: Sequence[int]) -> float | None:
    """Predicted RMTP accuracy: the mean over problems of rho~(n) (unlimited retries)."""
    if mu is None or not steps:
        return None
    e_minus, e_plus = e_minus or 0.0, e_plus or 0.0
    if mu * (1 - e_minus) + (1 - mu) * e_plus == 0:
        return 0.0
    return sum(rmtp_accuracy(mu, e_minus, e_plus, n) for n in steps) / len(steps)


def wrong_greedy_starts(task: Task, mtp: Sequence[Trajectory], samples: int) -> list[Problem]:
    """``samples`` copies of a problem starting at each run's first wrong greedy step's state."""
    starts = []
    for t in mtp:
        wrong = next((s for s in t.steps if step_fault(task, s) is not None), None)
        if wrong is not None:
            starts += samples_from(t.problem, wrong.state, "first-wrong", samples)
    return starts


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are right: 1 - C(n-c, k) / C(n, k)."""
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def revision_pass_at(task: Task, proposals: Sequence[Trajectory], samples: int) -> dict[str, float | None]:
    """pass@k per state from ``samples`` consecutive one-step proposals per state."""
    right = [bool(t.steps) and step_fault(task, t.steps[0]) is None for t in proposals]
    states = [right[i:i + samples] for i in range(0, len(right), samples)]
    return {f"pass@{k}": (sum(pass_at_k(samples, sum(s), k) for s in states) / len(states) if states else None)
            for k in PASS_AT if k <= samples}


def reflection_diagnostics(task: Task, pool, mtp: Sequence[Trajectory], rmtp: Sequence[Trajectory],
                           revision_temperature: float = 1.0, max_states: int = 100, seed: int = 0) -> dict:
    """The Theorem-1 quantities of one policy on one split, from its MTP and RMTP runs; pass@k
    samples ``PASS_AT[-1]`` revision proposals with ``pool`` (anything with the rollout pool's
    ``run``) at up to ``max_states`` states where the greedy step was wrong."""
    from cot_ray.mtp import ExecutionConfig

    mu, steps = planning_ability(task, mtp)
    first, revision = verification_counts(rmtp), verification_counts(rmtp, revisions=True)
    samples = PASS_AT[-1]
    starts = wrong_greedy_starts(task, mtp, samples)[: max_states * samples]
    proposals = pool.run(task.name, starts, ExecutionConfig.single_step(seed, revision_temperature)) if starts else []
    return {"mu": mu, "theorem1_rmtp": theorem1_rmtp(mu, first.e_minus, first.e_plus, steps),
            "e_plus_revision": revision.e_plus, "e_minus_revision": revision.e_minus,
            "wrong_greedy_states": len(starts) // samples, **revision_pass_at(task, proposals, samples)}
