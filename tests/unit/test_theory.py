import pytest

from cot_ray.mtp import theory

# docs/theory.md, the anchor values (paper Fig. 10's parameters): mu=0.8, e-=0.3, e+=0.2, f=0.8
MU, EN, EP, F = 0.8, 0.3, 0.2, 0.8


@pytest.mark.parametrize("n,mtp,rmtp", [(1, 0.8, 0.9333), (5, 0.3277, 0.7082), (10, 0.1074, 0.5016),
                                        (20, 0.0115, 0.2516)])
def test_mtp_and_rmtp_match_the_table(n, mtp, rmtp):
    assert theory.mtp_accuracy(MU, n) == pytest.approx(mtp, abs=1e-4)
    assert theory.rmtp_accuracy(MU, EN, EP, n) == pytest.approx(rmtp, abs=1e-4)


@pytest.mark.parametrize("m,n,expected", [(1, 1, 0.56), (2, 5, 0.4999), (3, 10, 0.7382), (4, 20, 0.7593),
                                          (4, 50, 0.7580), (8, 50, 0.0832)])
def test_rtbs_matches_the_table(m, n, expected):
    assert theory.rtbs_accuracy(MU, EN, EP, F, m, n) == pytest.approx(expected, abs=1e-4)


def test_expected_steps_and_bound():
    assert theory.expected_steps(MU, EN, EP, 3) == pytest.approx(3 * 1.6667, abs=1e-3)
    assert theory.reflection_helps(0.3, 0.7) and not theory.reflection_helps(0.6, 0.5)
    # at e- + e+ = 1 the verifier is a coin flip and reflection changes nothing
    assert theory.rmtp_accuracy(0.7, 0.4, 0.6, 6) == pytest.approx(theory.mtp_accuracy(0.7, 6))
