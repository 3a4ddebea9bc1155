"""Integer multiplication as a Markov Thought Process (paper section 3.1, appendix D.2.1).

State ``x*y+r``: what is left of the two multiplicands and the running result; x*y+r always
equals the original product. A step removes one digit value u from one operand: every digit of
that operand equal to u becomes 0 and u times the other operand, shifted to each zeroed position,
is added to r. The step text spells out the elementary computations, so T only reads the new
state out of it and detailed verification can label each computation:

    y7:07,35,03,21=21357;21357;3051*20+21357
    ^^ operand and digit
       ^^^^^^^^^^^ digit products of the other operand, units first: d*u + carry, two digits each
                   ^^^^^ delta = u * other operand
                         ^^^^^ r after each addition, one per zeroed position (units first)
                               ^^^^^^^^^^^^^ the new state

When an operand is 0 the answer step is ``a<r>``.
"""

from __future__ import annotations

import random
import re

from cot_ray.tasks.base import Problem, Transition, Verification, check_difficulty

DIGIT_RANGES: dict[str, tuple[int, int]] = {
    "id-easy": (1, 5),
    "id-hard": (6, 8),
    "ood-hard": (9, 10),
    "toy": (1, 2),
}
"""Number of digits d of the larger multiplicand per difficulty (paper Table in section 5)."""

MAX_DIGITS = 12
"""States with longer operands are rejected as malformed (protects the verifier service)."""

_STATE = re.compile(rf"^(\d{{1,{MAX_DIGITS}}})\*(\d{{1,{MAX_DIGITS}}})\+(\d{{1,{2 * MAX_DIGITS + 1}}})$")
_STEP = re.compile(r"^([xy])([1-9]):(\d\d(?:,\d\d)*)=(\d+);(\d+(?:,\d+)*)?;(.*)$")
_ANSWER = re.compile(r"^a(\d+)$")


def format_state(x: int, y: int, r: int) -> str:
    return f"{x}*{y}+{r}"


def parse_state(state: str) -> tuple[int, int, int] | None:
    m = _STATE.match(state)
    if m is None:
        return None
    return int(m[1]), int(m[2]), int(m[3])


def _digits(n: int) -> list[int]:
    """Decimal digits of n, units first."""
    return [int(ch) for ch in reversed(str(n))]


def _zero_digit(n: int, u: int) -> tuple[int, list[int]]:
    """n with every digit equal to u set to 0, and the zeroed positions (units = 0)."""
    digits = _digits(n)
    positions = [i for i, d in enumerate(digits) if d == u]
    kept = "".join(str(0 if d == u else d) for d in reversed(digits))
    return int(kept), positions


def _products(other: int, u: int) -> list[int]:
    """The digit products d*u + carry of the schoolbook product u*other, units first."""
    out, carry = [], 0
    for d in _digits(other):
        value = d * u + carry
        out.append(value)
        carry = value // 10
    return out


def write_step(x: int, y: int, r: int, operand: str, u: int) -> str:
    """The exact step text for removing digit ``u`` from ``operand`` ('x' or 'y')."""
    own, other = (x, y) if operand == "x" else (y, x)
    reduced, positions = _zero_digit(own, u)
    delta = u * other
    sums, total = [], r
    for i in positions:
        total += delta * 10**i
        sums.append(str(total))
    nx, ny = (reduced, y) if operand == "x" else (x, reduced)
    products = ",".join(f"{p:02d}" for p in _products(other, u))
    return f"{operand}{u}:{products}={delta};{','.join(sums)};{format_state(nx, ny, total)}"


class Multiplication:
    """The integer multiplication task."""

    name = "mult"

    def generate(self, difficulty: str, rng: random.Random) -> Problem:
        lo, hi = DIGIT_RANGES[check_difficulty(difficulty)]
        d = rng.randint(lo, hi)
        d_other = rng.randint(1, d)
        a, b = _random_number(d, rng), _random_number(d_other, rng)
        x, y = (a, b) if rng.random() < 0.5 else (b, a)
        return Problem(self.name, difficulty, {"x": x, "y": y}, str(x * y))

    def initial_state(self, problem: Problem) -> str:
        return format_state(int(problem.question["x"]), int(problem.question["y"]), 0)

    def validate_state(self, state: str) -> str | None:
        if parse_state(state) is None:
            return f"a mult state is 'x*y+r' with x, y of at most {MAX_DIGITS} digits, got {state[:40]!r}"
        return None

    def transition(self, state: str, step: str) -> Transition:
        if (m := _ANSWER.match(step)) is not None:
            return Transition(valid=True, answer=m[1])
        m = _STEP.match(step)
        if m is None:
            return Transition(valid=False, error="step does not match 'op u:products=delta;sums;state'")
        if parse_state(m[6]) is None:
            return Transition(valid=False, error="the new state is not 'x*y+r'")
        return Transition(valid=True, next_state=m[6])

    def expert_step(self, state: str, problem: Problem | None = None) -> str:
        parsed = parse_state(state)
        if parsed is None:
            raise ValueError(f"not a mult state: {state!r}")
        x, y, r = parsed
        if x == 0 or y == 0:
            return f"a{r}"
        operand = _expert_operand(x, y)
        own = x if operand == "x" else y
        u = next(d for d in _digits(own) if d != 0)
        return write_step(x, y, r, operand, u)

    def perturb_step(self, state: str, rng: random.Random) -> str:
        """The expert's step with a wrong running result: well-formed, breaks the invariant."""
        x, y, r = parse_state(state) or (0, 0, 0)
        offset = rng.randint(1, 9) * 10 ** rng.randint(0, 2)
        if x == 0 or y == 0:
            return f"a{r + offset}"
        step = self.expert_step(state)
        head, _, new_state = step.rpartition(";")
        nx, ny, nr = parse_state(new_state)  # type: ignore[misc]
        return f"{head};{format_state(nx, ny, nr + offset)}"

    def verify(self, state: str, step: str, detailed: bool = False) -> Verification:
        parsed = parse_state(state)
        if parsed is None:
            return Verification((False,))
        x, y, r = parsed
        if (m := _ANSWER.match(step)) is not None:
            return Verification((int(m[1]) == x * y + r,))
        m = _STEP.match(step)
        new = parse_state(m[6]) if m else None
        if m is None or new is None:
            return Verification((False,))
        if not detailed:
            nx, ny, nr = new
            return Verification((nx * ny + nr == x * y + r,))
        return Verification(_detailed_labels(x, y, r, m))

    def check_answer(self, problem: Problem, answer: str) -> bool:
        return answer.strip() == problem.answer


def _detailed_labels(x: int, y: int, r: int, m: re.Match[str]) -> tuple[bool, ...]:
    """One label per element written in the step, in the order they are written.

    Elements: the choice (operand and a digit it contains), each digit product, delta, each
    running sum and the new state. Each is compared with what the expert would have written for
    the same choice of operand and digit.
    """
    operand, u = m[1], int(m[2])
    own, other = (x, y) if operand == "x" else (y, x)
    choice_ok = u in _digits(own)
    expert = _STEP.match(write_step(x, y, r, operand, u))
    assert expert is not None
    labels = [choice_ok]
    labels += _compare_lists(m[3].split(","), expert[3].split(","))
    labels.append(m[4] == expert[4])
    written_sums = m[5].split(",") if m[5] else []
    expert_sums = expert[5].split(",") if expert[5] else []
    labels += _compare_lists(written_sums, expert_sums)
    labels.append(m[6] == expert[6])
    return tuple(labels)


def _compare_lists(written: list[str], expected: list[str]) -> list[bool]:
    """Element-wise equality; an element without a counterpart is wrong, and missing elements
    add one negative label (so a step that skips a computation is never all-positive)."""
    labels = [i < len(expected) and w == expected[i] for i, w in enumerate(written)]
    return labels + ([False] if len(written) < len(expected) else [])


def _expert_operand(x: int, y: int) -> str:
    """Remove digits from the operand with fewer distinct non-zero digits (fewer steps); ties: y."""
    nx = len(set(_digits(x)) - {0})
    ny = len(set(_digits(y)) - {0})
    return "x" if nx < ny else "y"


def _random_number(n_digits: int, rng: random.Random) -> int:
    return rng.randint(10 ** (n_digits - 1) if n_digits > 1 else 1, 10**n_digits - 1)
