"""Theorem-1 diagnostics of reflection, on the noisy expert whose mu, e+ and e- are known."""

import pytest

from cot_ray.data.splits import problems
from cot_ray.evaluate import LocalPool
from cot_ray.mtp import ExecutionConfig, ExpertPolicy
from cot_ray.tasks import get_task
from cot_ray.verify.diagnostics import pass_at_k, planning_ability, reflection_diagnostics, theorem1_rmtp

mult = get_task("mult")


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 2, 4) == pytest.approx(1 - (14 * 13 * 12 * 11) / (16 * 15 * 14 * 13))


def test_theorem1_prediction_matches_the_paper_numbers():
    assert theorem1_rmtp(0.8, 0.3, 0.2, [1]) == pytest.approx(0.9333, abs=1e-4)  # docs/theory.md anchor values, n = 1
    assert theorem1_rmtp(0.8, 0.3, 0.2, [1, 5]) == pytest.approx((0.9333 + 0.7082) / 2, abs=1e-4)
    assert theorem1_rmtp(0.5, 0.0, 0.0, [3]) == 1.0  # a perfect verifier turns any mu > 0 into 100%
    assert theorem1_rmtp(None, 0.1, 0.1, [3]) is None


def test_diagnostics_recover_the_noisy_experts_parameters_and_predict_its_rmtp_accuracy():
    policy = ExpertPolicy(mult, step_error=0.25, false_positive=0.2, false_negative=0.2)
    pool, probs = LocalPool(policy), problems(mult, "id-easy", 300, 1, "test")
    mtp = pool.run("mult", probs, ExecutionConfig(mode="mtp"))
    rmtp = pool.run("mult", probs, ExecutionConfig(mode="rmtp"))
    mu, steps = planning_ability(mult, mtp)
    assert 0.68 < mu < 0.82 and len(steps) == 300 and min(steps) >= 2
    d = reflection_diagnostics(mult, pool, mtp, rmtp, max_states=50)
    assert d["mu"] == mu and d["wrong_greedy_states"] == 50
    # revision samples come from the same noisy planner: about 3 in 4 are right
    assert 0.6 < d["pass@1"] < 0.9 and d["pass@16"] > 0.99 and d["pass@4"] > d["pass@1"]
    assert 0.1 < d["e_plus_revision"] < 0.3 and 0.1 < d["e_minus_revision"] < 0.3
    measured = sum(t.correct for t in rmtp) / len(rmtp)
    assert abs(d["theorem1_rmtp"] - measured) < 0.08, (d["theorem1_rmtp"], measured)
