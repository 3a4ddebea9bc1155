"""From scored trajectories to training sequences for the learner: experience making, in one place.

- grouping: a GRPO group is one query's samples (:func:`query_groups`, by identity, not position);
- filtering: groups whose rewards are all equal teach nothing (:class:`GroupFilter`);
- the per-trajectory transform (:func:`build_experience`): group advantages, early truncation,
  and every proposed step as one :class:`StepSequence`: the state's prompt, the step the policy
  wrote and, in the RMTP, the verification it wrote after ``|``. Which tokens train, and with
  what advantage:

  - step tokens carry the trajectory's advantage, except in steps the policy itself rejected,
    whose step tokens get advantage 0 (paper B.3: do not raise the likelihood of rejected steps);
  - verification tokens keep the advantage (planning and verification are optimised together);
  - the ``|`` between them was written by the executor, not the policy, so it never trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cot_ray.config import RLConfig
from cot_ray.mtp import Trajectory
from cot_ray.tokenizer import Tokenizer
from cot_ray.verify.verifier import Score


@dataclass(frozen=True, kw_only=True)
class StepSequence:
    """One step as a training sequence; per-token lists cover ``ids[start:]``. ``trajectory``
    is the index of its trajectory in the update's batch (negative: a filler that trains nothing)."""

    ids: list[int]
    start: int
    old_logp: list[float]
    adv_mask: list[float]
    train_mask: list[float]
    advantage: float
    trajectory: int
    reward: float


@dataclass(frozen=True, kw_only=True)
class Sampled:
    """Trajectories and their scores, position by position (one sampling round, or the groups
    an update keeps)."""

    trajectories: list[Trajectory]
    scores: list[Score]

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.scores]

    def pick(self, indices: list[int]) -> Sampled:
        return Sampled(trajectories=[self.trajectories[i] for i in indices], scores=[self.scores[i] for i in indices])


def query_groups(trajs: list[Trajectory]) -> list[list[int]]:
    """The indices of each query's samples (a GRPO group), queries in order of first appearance.
    Groups come from the problems' identity, not from positions in the batch."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(trajs):
        groups.setdefault(t.problem.query, []).append(i)
    return list(groups.values())


def informative_groups(rewards: list[float], groups: list[list[int]]) -> list[bool]:
    """For each group: do its rewards differ?

    A group whose samples all earned the same reward has zero GRPO advantage everywhere: it
    costs a learner pass and teaches nothing (DAPO's dynamic sampling drops such groups).
    """
    return [max(rewards[i] for i in g) != min(rewards[i] for i in g) for g in groups]


class GroupFilter:
    """Collects sampled groups for one update, keeping informative ones first (dynamic filtering).

    ``add`` takes one sampling round (grouped by query); ``full`` says when ``wanted``
    informative groups are in; ``batch`` returns ``wanted`` groups, informative ones first,
    flat ones filling any gap, as one :class:`Sampled`. Without ``filtering`` every group counts
    as kept, in sampling order.
    """

    def __init__(self, wanted: int, filtering: bool) -> None:
        self.wanted, self.filtering = wanted, filtering
        self.kept: list[Sampled] = []
        self.flat: list[Sampled] = []
        self.seen = self.n_flat = 0

    def add(self, sampled: Sampled) -> None:
        groups = query_groups(sampled.trajectories)
        for g, informative in zip(groups, informative_groups(sampled.rewards, groups)):
            (self.kept if informative or not self.filtering else self.flat).append(sampled.pick(g))
            self.seen, self.n_flat = self.seen + 1, self.n_flat + (not informative)

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.wanted

    @property
    def flat_share(self) -> float:
        """Share of all sampled groups whose rewards were all equal."""
        return self.n_flat / max(self.seen, 1)

    def batch(self) -> Sampled:
        groups = (self.kept + self.flat)[:self.wanted]
        return Sampled(trajectories=[t for g in groups for t in g.trajectories],
                       scores=[s for g in groups for s in g.scores])


def build_experience(sampled: Sampled, rl: RLConfig) -> list[StepSequence]:
    """The learner's sequences of an update's kept groups: GRPO advantages within each query's
    group, each trajectory cut at its first error (``rl.early_truncation``), then its steps."""
    import torch

    from cot_ray.rl.losses import group_advantages

    groups = torch.zeros(len(sampled.trajectories), dtype=torch.long)
    for k, members in enumerate(query_groups(sampled.trajectories)):
        groups[members] = k
    adv = group_advantages(torch.tensor(sampled.rewards), groups).tolist()
    seqs = []
    for i, (t, score, a) in enumerate(zip(sampled.trajectories, sampled.scores, adv)):
        if rl.early_truncation:
            t = truncate_at_first_error(t, score.first_error)
        seqs += trajectory_sequences(t, i, a, score.reward)
    return seqs


def trajectory_sequences(traj: Trajectory, index: int, advantage: float, reward: float,
                         tok: Tokenizer | None = None) -> list[StepSequence]:
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
        out.append(StepSequence(ids=ids, start=len(prompt), old_logp=old, adv_mask=adv_mask, train_mask=train,
                                advantage=advantage, trajectory=index, reward=reward))
    return out


def truncate_at_first_error(traj: Trajectory, first_error: int | None) -> Trajectory:
    """Early truncation (paper B.3): drop the steps after the first accepted wrong step."""
    if first_error is None:
        return traj
    return dataclasses.replace(traj, steps=traj.steps[: first_error + 1], answer=None, correct=False,
                               finish="truncated")


def shard(sequences: list[StepSequence], world: int) -> list[list[StepSequence]]:
    """Split by trajectory (PPO's GAE needs whole trajectories on one worker) into ``world``
    shards of equal length (DDP needs every worker to take the same number of steps): the
    shorter shards are filled with copies that train nothing (mask 0)."""
    by_traj: dict[int, list[StepSequence]] = {}
    for s in sequences:
        by_traj.setdefault(s.trajectory, []).append(s)
    shards: list[list[StepSequence]] = [[] for _ in range(world)]
    for seqs in sorted(by_traj.values(), key=len, reverse=True):
        min(shards, key=len).extend(seqs)
    longest = max(len(s) for s in shards)
    for s in shards:
        base = list(s) or list(sequences)
        for k in range(longest - len(s)):
            filler = base[k % len(base)]
            s.append(dataclasses.replace(filler, train_mask=[0.0] * len(filler.train_mask), advantage=0.0,
                                         trajectory=-1 - k, reward=0.0))
    return shards
