"""Confidence intervals for accuracies and their differences, so the report can tell signal from noise.

Evaluation sets are a few hundred problems; at that size a 3-point gap between two policies is
often sampling noise. Wilson's score interval behaves well near 0% and 100% (where the normal
approximation collapses to a zero-width interval), and Newcombe's hybrid score interval for a
difference of two proportions is built from the two Wilson intervals (Newcombe 1998, method 10).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def _check(k: int, n: int) -> None:
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def _rate(k: int, n: int) -> float:
    """k/n; 0.5 (the middle of Wilson's (0, 1)) when there is no data, so differences span 0."""
    return k / n if n else 0.5


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n``; (0, 1) when there is no data."""
    _check(k, n)
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Exact ends at k=0 and k=n: the formula only reaches them up to rounding.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def diff_interval(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (independent samples; for two runs on the
    same problems it is conservative, i.e. wider than a paired interval)."""
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    p1, p2 = _rate(k1, n1), _rate(k2, n2)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def verdict(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> str:
    """The difference p1 - p2 in percentage points with its interval, flagged when it holds 0."""
    p1, p2 = _rate(k1, n1), _rate(k2, n2)
    low, high = diff_interval(k1, n1, k2, n2, z)
    text = f"{100 * (p1 - p2):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text + " (no difference: inside the noise)" if low <= 0 <= high else text


def counts(row: dict) -> tuple[int, int]:
    """(correct, n) of a summary row; rows cached before ``correct`` existed derive it."""
    n = int(row["n"])
    return int(row.get("correct", round(row["accuracy"] * n))), n


def paired_interval(a: Sequence[bool], b: Sequence[bool], z: float = 1.96) -> tuple[float, float, float]:
    """(p_a - p_b, low, high) for two outcomes of the **same** problems, e.g. RMTP and MTP of one
    checkpoint: Newcombe's hybrid score interval for paired proportions (Newcombe 1998, "paired
    data", method 10). Pairing removes the problems' own difficulty from the noise, so the
    interval is narrower than :func:`diff_interval`'s whenever the two outcomes agree often."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same problems: {len(a)} against {len(b)}")
    n = len(a)
    if n == 0:
        return 0.0, -1.0, 1.0
    both = sum(x and y for x, y in zip(a, b))
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, z)
    l2, u2 = wilson(both + only_b, n, z)
    denominator = (both + only_a) * (neither + only_b) * (both + only_b) * (neither + only_a)
    phi = (both * neither - only_a * only_b) / math.sqrt(denominator) if denominator else 0.0
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return d, max(-1.0, low), min(1.0, high)


def paired_verdict(a: Sequence[bool], b: Sequence[bool], z: float = 1.96) -> str:
    """:func:`paired_interval` in percentage points, flagged when the interval holds 0."""
    d, low, high = paired_interval(a, b, z)
    text = f"{100 * d:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text + " (no difference: inside the noise)" if low <= 0 <= high else text


def rank_pairs(right: Sequence[float], wrong: Sequence[float]) -> tuple[float, int]:
    """(wins, pairs): over every (right, wrong) pair of scores, 1 when the right one scores
    higher, 1/2 on a tie; wins / pairs is the AUC (Mann-Whitney)."""
    ordered = sorted(wrong)
    wins = 0.0
    for score in right:
        below, not_above = bisect.bisect_left(ordered, score), bisect.bisect_right(ordered, score)
        wins += below + (not_above - below) / 2
    return wins, len(right) * len(wrong)
