"""From scored trajectories to training sequences for the learner.

Every proposed step becomes one sequence: the state's prompt, the step the policy wrote and, in
the RMTP, the verification it wrote after ``|``. Which tokens train, and with what advantage:

- step tokens carry the trajectory's advantage, except in steps the policy itself rejected,
  whose step tokens get advantage 0 (paper B.3: do not raise the likelihood of rejected steps);
- verification tokens keep the advantage (planning and verification are optimised together);
- the ``|`` between them was written by the executor, not the policy, so it never trains.
"""

from __future__ import annotations

from dataclasses import dataclass

from cot_ray.mtp import Trajectory
from cot_ray.tokenizer import Tokenizer


@dataclass
class Sequence:
    """One step as a training sequence; per-token lists cover ``ids[start:]``."""

    ids: list[int]
    start: int
    old_logp: list[float]
    adv_mask: list[float]
    train_mask: list[float]
    advantage: float
    trajectory: int
    reward: float


def trajectory_sequences(traj: Trajectory, index: int, advantage: float, reward: float,
                         tok: Tokenizer | None = None) -> list[Sequence]:
    tok = tok or Tokenizer()
    out = []
    for s in traj.steps:
        if not s.step_token_ids:
            continue
        prompt = tok.plan_prompt(s.state)
        ids = prompt + list(s.step_token_ids)
        n_step = len(s.step_token_ids)
        step_lp = list(s.step_logprobs) or [0.0] * n_step
        old, adv_mask, train = step_lp, [0.0 if s.rejected else 1.0] * n_step, [1.0] * n_step
        if s.verify_token_ids:
            v = list(s.verify_token_ids)
            ids += [tok.verify_mark_id] + v
            v_lp = list(s.verify_logprobs) or [0.0] * len(v)
            old = old + [0.0] + v_lp
            adv_mask = adv_mask + [0.0] + [1.0] * len(v)
            train = train + [0.0] + [1.0] * len(v)
        out.append(Sequence(ids, len(prompt), old, adv_mask, train, advantage, index, reward))
    return out


def truncate_at_first_error(traj: Trajectory, first_error: int | None) -> Trajectory:
    """Early truncation (paper B.3): drop the steps after the first accepted wrong step."""
    if first_error is None:
        return traj
    return Trajectory(traj.problem, traj.mode, traj.steps[: first_error + 1], None, False, "truncated",
                      traj.policy_version)


def shard(sequences: list[Sequence], world: int) -> list[list[Sequence]]:
    """Split by trajectory (PPO's GAE needs whole trajectories on one worker) into ``world``
    shards of equal length (DDP needs every worker to take the same number of steps): the
    shorter shards are filled with copies that train nothing (mask 0)."""
    by_traj: dict[int, list[Sequence]] = {}
    for s in sequences:
        by_traj.setdefault(s.trajectory, []).append(s)
    shards: list[list[Sequence]] = [[] for _ in range(world)]
    for seqs in sorted(by_traj.values(), key=len, reverse=True):
        min(shards, key=len).extend(seqs)
    longest = max(len(s) for s in shards)
    for s in shards:
        base = list(s) or list(sequences)
        for k in range(longest - len(s)):
            filler = base[k % len(base)]
            s.append(Sequence(filler.ids, filler.start, filler.old_logp, filler.adv_mask,
                              [0.0] * len(filler.train_mask), 0.0, -1 - k, 0.0))
    return shards
