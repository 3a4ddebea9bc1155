"""Closed-form accuracies of the paper's simplified reasoning model (section 4, appendix C).

A self-verifying policy is described by mu (planning ability), e- (false-negative rate),
e+ (false-positive rate) and f (rejection rate at negative states). These formulas anchor the
simulation tests: a noisy expert run through the real executor must agree with them.
"""

from __future__ import annotations


def step_probabilities(mu: float, e_neg: float, e_pos: float) -> tuple[float, float, float]:
    """(alpha, beta, gamma): rejected at once; correct and accepted; wrong but accepted."""
    alpha = mu * e_neg + (1 - mu) * (1 - e_pos)
    beta = mu * (1 - e_neg)
    gamma = (1 - mu) * e_pos
    return alpha, beta, gamma


def mtp_accuracy(mu: float, n: int) -> float:
    """rho(n) = mu^n: every one of n steps must be right."""
    return mu**n


def rmtp_accuracy(mu: float, e_neg: float, e_pos: float, n: int) -> float:
    """rho~(n) = (beta / (1 - alpha))^n with unlimited retries (Prop. 2)."""
    alpha, beta, _ = step_probabilities(mu, e_neg, e_pos)
    return (beta / (1 - alpha)) ** n


def rtbs_accuracy(mu: float, e_neg: float, e_pos: float, f: float, m: int, n: int) -> float:
    """rho~_m(n) for RTBS of width m (Prop. 2; the recursion as read in docs/theory.md)."""
    alpha, beta, gamma = step_probabilities(mu, e_neg, e_pos)
    delta = eps = 0.0
    accuracy = 1.0
    for _ in range(n):
        delta, eps = alpha + beta * delta**m + gamma * eps**m, f + (1 - f) * eps**m
        sigma = beta * sum(delta**i for i in range(m))
        accuracy *= sigma
    return accuracy


def expected_steps(mu: float, e_neg: float, e_pos: float, n: int) -> float:
    """Expected proposals for a correct RMTP run of scale n: n / (1 - alpha) (Prop. 1)."""
    alpha, _, _ = step_probabilities(mu, e_neg, e_pos)
    return n / (1 - alpha)


def reflection_helps(e_neg: float, e_pos: float) -> bool:
    """Theorem 1: RMTP is at least as accurate as MTP exactly when e- + e+ <= 1."""
    return e_neg + e_pos <= 1
