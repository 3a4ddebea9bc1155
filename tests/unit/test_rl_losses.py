import pytest
import torch

from cot_ray.data.splits import make_problem
from cot_ray.mtp import ExecutionConfig, ExpertPolicy, MTPExecutor
from cot_ray.rl.experience import StepSequence, shard, trajectory_sequences, truncate_at_first_error
from cot_ray.rl.learner import pad, ppo_targets
from cot_ray.rl.losses import clipped_surrogate, gae, group_advantages, kl_k3, policy_loss
from cot_ray.tasks import get_task
from cot_ray.tokenizer import Tokenizer

tok = Tokenizer()


def test_group_advantages_normalise_within_groups_and_zero_flat_groups():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(rewards, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert adv[:4].mean().abs() < 1e-6 and adv[0] > 0 > adv[1]
    assert torch.allclose(adv[:4].std(unbiased=False), torch.tensor(1.0), atol=1e-4)
    assert torch.equal(adv[4:], torch.zeros(4))  # all correct: no signal, no NaN


def test_kl_estimator_is_zero_at_equality_and_positive_otherwise():
    lp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert torch.allclose(kl_k3(lp, lp), torch.zeros(3))
    assert (kl_k3(lp, lp - 0.3) > 0).all() and (kl_k3(lp, lp + 0.3) > 0).all()


def test_clipping_stops_the_ratio_from_paying_beyond_the_trust_region():
    old = torch.zeros(2)
    new = torch.tensor([0.5, -0.5])  # ratios e^0.5 and e^-0.5
    adv = torch.tensor([1.0, -1.0])
    surrogate, ratio = clipped_surrogate(new, old, adv, clip=0.1)
    assert torch.allclose(surrogate, torch.tensor([1.1, -0.9]))
    loss, diag = policy_loss(new, old, new, adv, torch.ones(2), clip=0.1, kl_coef=0.0)
    assert loss == pytest.approx(-0.1) and diag["clip_frac"] == 1.0


def test_gae_with_lambda_one_gives_monte_carlo_advantages():
    values = torch.tensor([0.2, 0.5, 0.1])
    rewards = torch.tensor([0.0, 0.0, 1.0])
    adv, returns = gae(rewards, values, gamma=1.0, lam=1.0)
    assert torch.allclose(returns, torch.ones(3)) and torch.allclose(adv, 1 - values)


def _rmtp_trajectory():
    task = get_task("mult")
    policy = ExpertPolicy(task, step_error=0.5, false_positive=0.0, false_negative=0.0)
    for i in range(100):
        problem = make_problem(task, "id-easy", 0, i)
        t = MTPExecutor(task, policy, ExecutionConfig(mode="rmtp", seed=i)).run([problem])[0]
        if t.n_rejections and t.correct:
            return t
    raise AssertionError("no trajectory with a rejection")


def test_sequences_mask_rejected_steps_but_keep_their_verification():
    traj = _rmtp_trajectory()
    seqs = trajectory_sequences(traj, 0, advantage=0.7, reward=1.0)
    assert len(seqs) == len(traj.steps)
    for s, step in zip(seqs, traj.steps):
        n_step = len(step.step_token_ids)
        assert s.ids[: s.start] == tok.plan_prompt(step.state)
        assert s.ids[s.start + n_step] == tok.verify_mark_id
        assert s.train_mask[n_step] == 0.0  # the '|' the executor wrote
        assert set(s.adv_mask[:n_step]) == {0.0 if step.rejected else 1.0}
        assert set(s.adv_mask[n_step + 1:]) == {1.0}  # verification tokens always keep advantage
    batch = pad(seqs, tok.pad_id)
    first = seqs[0]
    row_targets = batch["y"][0, first.start - 1: first.start - 1 + len(first.train_mask)]
    assert row_targets.tolist() == first.ids[first.start:]


def test_truncation_and_sharding():
    task = get_task("mult")
    traj = MTPExecutor(task, ExpertPolicy(task), ExecutionConfig()).run([make_problem(task, "id-hard", 0, 1)])[0]
    cut = truncate_at_first_error(traj, 0)
    assert len(cut.steps) == 1 and not cut.correct and truncate_at_first_error(traj, None) is traj
    seqs = [s for i in range(5) for s in trajectory_sequences(traj, i, 0.0, 0.0)]
    parts = shard(seqs, 2)
    assert len(parts[0]) == len(parts[1])
    real = [s for p in parts for s in p if s.trajectory >= 0]
    assert len(real) == len(seqs)
    for p in parts:  # whole trajectories per worker
        ids = {s.trajectory for s in p if s.trajectory >= 0}
        assert all(sum(s.trajectory == i for s in p) == len(traj.steps) for i in ids)
    fillers = [s for p in parts for s in p if s.trajectory < 0]
    assert all(sum(s.train_mask) == 0 for s in fillers)


class _TokenValue(torch.nn.Module):
    """A critic whose value at a position is 0.1 x the token id there: values known by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.1))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids.float() * self.scale


def _seq(ids, train_mask, trajectory, reward):
    n = len(train_mask)
    return StepSequence(ids=ids, start=len(ids) - n, old_logp=[0.0] * n, adv_mask=[1.0] * n, train_mask=train_mask,
                        advantage=0.0, trajectory=trajectory, reward=reward)


@pytest.mark.parametrize("chunk", [1, 64])
def test_ppo_targets_run_gae_once_over_whole_trajectories(chunk):
    a = _seq([1, 5, 6, 7], [1.0, 1.0], trajectory=0, reward=1.0)  # values at its tokens: 0.5, 0.6
    b = _seq([1, 8, 9, 3, 4], [1.0, 0.0, 1.0], trajectory=0, reward=1.0)  # 0.8, (0.9 untrained), 0.3
    c = _seq([1, 2, 4], [1.0], trajectory=1, reward=0.0)  # 0.2
    (adv_a, ret_a), (adv_c, ret_c), (adv_b, ret_b) = ppo_targets(_TokenValue(), [a, c, b], 0, gamma=1.0, lam=0.5,
                                                                 chunk=chunk)
    # trajectory 0's chain: values 0.5, 0.6, 0.8, 0.3 and reward 1 at the end, by hand:
    # deltas 0.1, 0.2, -0.5, 0.7 -> advantages 0.1625, 0.125, -0.15, 0.7
    assert adv_a.tolist() == pytest.approx([0.1625, 0.125])
    assert ret_a.tolist() == pytest.approx([0.6625, 0.725])
    assert adv_b.tolist() == pytest.approx([-0.15, 0.0, 0.7])  # the untrained '|' gets nothing
    assert ret_b.tolist() == pytest.approx([0.65, 0.0, 1.0])
    assert adv_c.tolist() == pytest.approx([-0.2]) and ret_c.tolist() == pytest.approx([0.0])
