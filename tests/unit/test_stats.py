import pytest

from cot_ray.stats import diff_interval, verdict, wilson


@pytest.mark.parametrize("k,n,low,high", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                                          (191, 200, 0.9167, 0.9761), (0, 0, 0.0, 1.0)])
def test_wilson_matches_known_values(k, n, low, high):
    assert wilson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_ends_are_exact_and_width_follows_z():
    assert wilson(0, 7)[0] == 0.0 and wilson(7, 7)[1] == 1.0
    l95, h95 = wilson(30, 100)
    l99, h99 = wilson(30, 100, z=2.576)
    assert l99 < l95 < 0.3 < h95 < h99


@pytest.mark.parametrize("k,n", [(-1, 10), (11, 10), (1, 0)])
def test_wilson_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson(k, n)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
@pytest.mark.parametrize("k1,n1,k2,n2,low,high", [
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926), (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0), (10, 10, 0, 10, 0.6075, 1.0)])
def test_diff_interval_matches_newcombe(k1, n1, k2, n2, low, high):
    assert diff_interval(k1, n1, k2, n2) == pytest.approx((low, high), abs=1e-4)


def test_diff_interval_is_antisymmetric():
    low, high = diff_interval(56, 70, 48, 80)
    assert diff_interval(48, 80, 56, 70) == pytest.approx((-high, -low))


def test_no_data_spans_zero():
    low, high = diff_interval(0, 0, 190, 200)
    assert low < 0 < high


def test_verdict_reports_points_and_flags_noise():
    assert verdict(56, 70, 48, 80) == "+20.0 [+5.2, +33.4]"
    assert verdict(48, 80, 56, 70) == "-20.0 [-33.4, -5.2]"
    assert verdict(100, 200, 96, 200) == "+2.0 [-7.7, +11.7] (no difference: inside the noise)"
