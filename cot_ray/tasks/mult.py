"""Integer multiplication as a Markov Thought Process (paper section 3.1, appendix D.2.1).

The semantics are the paper's: the state ``x*y+r`` always equals the original product; a step
removes one digit value u from one operand (every digit equal to u becomes 0) and adds u times
the other operand, shifted to each zeroed position, to r; T only reads the new state out of the
step. How numbers and computations are written is ours to choose (docs/decisions.md). Two
layouts exist, chosen by measurement (``bench/time_to_accuracy.py``, docs/formats.md):

**LSD** (task ``mult``, the default). Every number is written least-significant digit first, so
each digit a model writes depends on digits already seen plus one carry, and every addition is
written out aligned: ``r + delta*10^i = sum`` with all three numbers padded to the same width, so
digit k of each sits at the same offset. Operands keep their width (zeroed digits stay as 0)::

    state  1503*72+0                                  (3051 * 27 + 0, digits reversed)
    step   y7:02:07,35,03,21=75312;00000+75312=75312;1503*02+75312
           ^^ operand and digit
              ^^ the operand with every 7 set to 0 (so the zeroed positions are explicit)
                 ^^^^^^^^^^^ digit products d*u + carry of the other operand, units first
                             ^^^^^ delta = the products' units digits and the last carry
                                   ^^^^^^^^^^^^^^^^^ one aligned addition per zeroed position
                                                     ^^^^^^^^^^^^^ the new state
    answer a77328                                     (82377, reversed)

**MSD** (task ``mult-msd``): the first layout, kept as the baseline the LSD layout is measured
against. Numbers are written most-significant digit first and each running sum in one go::

    state  3051*27+0
    step   y7:07,35,03,21=21357;21357;3051*20+21357
    answer a82377
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from cot_ray.tasks.base import Problem, TaskFamily, Transition, Verification, check_difficulty

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
_ANSWER = re.compile(r"^a(\d+)$")


@dataclass(frozen=True)
class StepParts:
    """The elements a (non-answer) step writes, in order; what detailed verification labels."""

    operand: str
    u: int
    reduced: str
    """The operand with every u set to 0, as written in the step (LSD only; "" in MSD)."""
    products: tuple[str, ...]
    delta: str
    additions: tuple[tuple[str, ...], ...]
    """LSD: (r, shifted delta, sum) per zeroed position; MSD: (sum,) per zeroed position."""
    state: str


def _digits(n: int) -> list[int]:
    """Decimal digits of n, units first."""
    return [int(ch) for ch in reversed(str(n))]


def _products(other: int, u: int) -> list[int]:
    """The digit products d*u + carry of the schoolbook product u*other, units first."""
    out, carry = [], 0
    for d in _digits(other):
        value = d * u + carry
        out.append(value)
        carry = value // 10
    return out


def _rev(n: int) -> str:
    return str(n)[::-1]


class LsdLayout:
    """Numbers least-significant digit first; aligned additions (see the module docstring)."""

    def initial_state(self, x: int, y: int) -> str:
        return f"{_rev(x)}*{_rev(y)}+0"

    def parse_state(self, state: str) -> tuple[int, int, int] | None:
        m = _STATE.match(state)
        if m is None:
            return None
        return int(m[1][::-1]), int(m[2][::-1]), int(m[3][::-1])

    def answer(self, r: int) -> str:
        return f"a{_rev(r)}"

    def read_answer(self, digits: str) -> str:
        return digits[::-1]

    def parts(self, state: str, operand: str, u: int) -> StepParts:
        m = _STATE.match(state)
        assert m is not None, state
        xs, ys, r = m[1], m[2], int(m[3][::-1])
        own, other = (xs, ys) if operand == "x" else (ys, xs)
        reduced = "".join("0" if ch == str(u) else ch for ch in own)
        delta = u * int(other[::-1])
        additions = []
        for i, ch in enumerate(own):
            if ch != str(u):
                continue
            total = r + delta * 10**i
            width = len(str(total))
            shifted = "0" * i + _rev(delta)
            additions.append((_rev(r).ljust(width, "0"), shifted.ljust(width, "0"), _rev(total)))
            r = total
        nx, ny = (reduced, ys) if operand == "x" else (xs, reduced)
        return StepParts(operand, u, reduced, tuple(f"{p:02d}" for p in _products(int(other[::-1]), u)),
                         _rev(delta), tuple(additions), f"{nx}*{ny}+{_rev(r)}")

    def write(self, p: StepParts) -> str:
        head = f"{p.operand}{p.u}:{p.reduced}:{','.join(p.products)}={p.delta}"
        return ";".join([head, *(f"{a}+{b}={s}" for a, b, s in p.additions), p.state])

    _HEAD = re.compile(r"^([xy])([1-9]):(\d+):(\d\d(?:,\d\d)*)=(\d+)$")
    _ADD = re.compile(r"^(\d+)\+(\d+)=(\d+)$")

    def parse(self, step: str) -> StepParts | None:
        fields = step.split(";")
        head = self._HEAD.match(fields[0])
        adds = [self._ADD.match(f) for f in fields[1:-1]]
        if head is None or len(fields) < 2 or not all(adds) or not _STATE.match(fields[-1]):
            return None
        return StepParts(head[1], int(head[2]), head[3], tuple(head[4].split(",")), head[5],
                         tuple(a.groups() for a in adds if a), fields[-1])


class MsdLayout:
    """Numbers most-significant digit first, each running sum in one go (the first layout)."""

    def initial_state(self, x: int, y: int) -> str:
        return f"{x}*{y}+0"

    def parse_state(self, state: str) -> tuple[int, int, int] | None:
        m = _STATE.match(state)
        return None if m is None else (int(m[1]), int(m[2]), int(m[3]))

    def answer(self, r: int) -> str:
        return f"a{r}"

    def read_answer(self, digits: str) -> str:
        return digits

    def parts(self, state: str, operand: str, u: int) -> StepParts:
        x, y, r = self.parse_state(state) or (0, 0, 0)
        own, other = (x, y) if operand == "x" else (y, x)
        digits = _digits(own)
        reduced = int("".join(str(0 if d == u else d) for d in reversed(digits)))
        delta = u * other
        sums = []
        for i, d in enumerate(digits):
            if d == u:
                r += delta * 10**i
                sums.append((str(r),))
        nx, ny = (reduced, y) if operand == "x" else (x, reduced)
        return StepParts(operand, u, "", tuple(f"{p:02d}" for p in _products(other, u)), str(delta),
                         tuple(sums), f"{nx}*{ny}+{r}")

    def write(self, p: StepParts) -> str:
        sums = ",".join(s for (s,) in p.additions)
        return f"{p.operand}{p.u}:{','.join(p.products)}={p.delta};{sums};{p.state}"

    _STEP = re.compile(r"^([xy])([1-9]):(\d\d(?:,\d\d)*)=(\d+);(\d+(?:,\d+)*)?;(.*)$")

    def parse(self, step: str) -> StepParts | None:
        m = self._STEP.match(step)
        if m is None or not _STATE.match(m[6]):
            return None
        sums = tuple((s,) for s in m[5].split(",")) if m[5] else ()
        return StepParts(m[1], int(m[2]), "", tuple(m[3].split(",")), m[4], sums, m[6])


_ADDITION_KINDS = {3: ("copy", "align", "sum"), 1: ("sum",)}
"""Failure kinds of an addition's fields: r copied, delta shifted into place, the sum."""


MARKS = ("restated", "recomputed", "paired")
"""Detailed verifications that write what each label checks before it (:meth:`Multiplication._marked`)."""


class Multiplication:
    """The integer multiplication task, in one of the two layouts."""

    family: TaskFamily = "mult"

    def __init__(self, layout: LsdLayout | MsdLayout | None = None, name: str = "mult", marks: str = "") -> None:
        self.layout = layout or LsdLayout()
        self.name = name
        if marks not in ("", *MARKS):
            raise ValueError(f"marks: expected one of {', '.join(MARKS)} or '', got {marks!r}")
        if marks and not isinstance(self.layout, LsdLayout):
            raise ValueError(f"{marks} verification reads the LSD layout's written additions; use LsdLayout")
        self.marks = marks

    def generate(self, difficulty: str, rng: random.Random) -> Problem:
        """Digit counts (dx, dy) uniform over the grid cells of the level, then uniform numbers.

        A uniform cell, rather than a uniform larger length, keeps one-digit products (81
        problems in all) at 1/25 of ID-Easy instead of a fifth of it.
        """
        lo, hi = DIGIT_RANGES[check_difficulty(difficulty)]
        dx, dy = rng.choice([(a, b) for a in range(1, hi + 1) for b in range(1, hi + 1) if max(a, b) >= lo])
        x, y = _random_number(dx, rng), _random_number(dy, rng)
        return Problem(self.name, difficulty, {"x": x, "y": y}, str(x * y))

    def initial_state(self, problem: Problem) -> str:
        return self.layout.initial_state(int(problem.question["x"]), int(problem.question["y"]))

    def validate_state(self, state: str) -> str | None:
        if self.layout.parse_state(state) is None:
            return f"a mult state is 'x*y+r' with x, y of at most {MAX_DIGITS} digits, got {state[:40]!r}"
        return None

    def transition(self, state: str, step: str) -> Transition:
        if (m := _ANSWER.match(step)) is not None:
            return Transition(valid=True, answer=self.layout.read_answer(m[1]))
        parts = self.layout.parse(step)
        if parts is None:
            return Transition(valid=False, error="step does not match the mult step format")
        return Transition(valid=True, next_state=parts.state)

    def expert_step(self, state: str, problem: Problem | None = None) -> str:
        parsed = self.layout.parse_state(state)
        if parsed is None:
            raise ValueError(f"not a mult state: {state!r}")
        x, y, r = parsed
        if x == 0 or y == 0:
            return self.layout.answer(r)
        operand = _expert_operand(x, y)
        u = next(d for d in _digits(x if operand == "x" else y) if d != 0)
        return self.layout.write(self.layout.parts(state, operand, u))

    def perturb_step(self, state: str, rng: random.Random) -> str:
        """The expert's step with a wrong running result: well-formed, breaks the invariant."""
        x, y, r = self.layout.parse_state(state) or (0, 0, 0)
        offset = rng.randint(1, 9) * 10 ** rng.randint(0, 2)
        if x == 0 or y == 0:
            return self.layout.answer(r + offset)
        head, _, new_state = self.expert_step(state).rpartition(";")
        operands, _, _ = new_state.rpartition("+")
        _, _, nr = self.layout.parse_state(new_state)  # type: ignore[misc]
        return f"{head};{operands}+{self.layout.answer(nr + offset)[1:]}"

    def corruption_kinds(self, step: str) -> tuple[str, ...]:
        """The kinds :meth:`corrupt_step` can make wrong in ``step`` (:mod:`cot_ray.tasks.mult_corruptions`)."""
        from cot_ray.tasks.mult_corruptions import kinds_of

        return kinds_of(self, step)

    def corrupt_step(self, state: str, step: str, kind: str, rng: random.Random) -> str | None:
        """The right ``step`` at ``state`` with one element of ``kind`` wrong (None if it has none)."""
        from cot_ray.tasks.mult_corruptions import corrupt_step

        return corrupt_step(self, state, step, kind, rng)

    def verify(self, state: str, step: str, detailed: bool = False) -> Verification:
        parsed = self.layout.parse_state(state)
        if parsed is None:
            return Verification((False,))
        if not detailed:
            return Verification((self._invariant_holds(parsed, step),))
        if self.marks:
            return self._marked(state, step)
        return Verification(tuple(ok for _, ok in self.elements(state, step)))

    def _marked(self, state: str, step: str) -> Verification:
        """Detailed verification that writes, before the label of each digit product and each copy
        (and, ``recomputed``, each sum), what it is checked against, from the state and the step
        only (never the expert's value):

        - product j: the other operand's digit d_j, u and c, the tens digit of the product written
          before it (0 first); ``recomputed`` adds the written w_j and ``=`` v, the right value
          d_j * u + c. ✓ when w_j = v: restated, a times-table lookup beside its inputs;
          recomputed, the lookup written out (what the policy does to write w_j, trained on every
          example, not only on the rare ✗) and the label a comparison of two adjacent numbers.
          Locally right products are all right (c starts at 0), so the step's verdict is the
          expert's; after a first wrong product, a later one is judged on its own.
        - an addition's copy of r: the number it copies (the state's r first, then the sum
          written before it), then ✓ when it is the same number (zero padding is alignment).
        - an addition's sum (``recomputed``): ``=`` and the right sum of the two numbers written
          before it, ✓ when the written sum is that number.
        - ``paired``: ``recomputed``, but every long number compared (a copy and its source, a sum
          and its right value, an answer and the state's r) is written digit by digit, each
          written digit beside the one it must equal (:func:`_paired`), so that the label asks
          whether any adjacent pair differs instead of comparing two numbers tens of tokens apart.
        Every other element keeps its plain label (:meth:`elements`)."""
        elements = self.elements(state, step)
        p = self.layout.parse(step)
        m = _STATE.match(state)
        if self.marks == "paired" and m is not None and (a := _ANSWER.match(step)) is not None:
            return Verification((_same(a[1], m[3]),), (_paired(a[1], m[3]),))
        if p is None:  # an answer or an unreadable step: one plain label
            return Verification(tuple(ok for _, ok in elements))
        assert m is not None, state
        other = m[2] if p.operand == "x" else m[1]
        recompute, paired = self.marks in ("recomputed", "paired"), self.marks == "paired"
        labels, marks = [], []
        j = k = s = 0
        for kind, ok in elements:
            mark = ""
            if kind in ("product", "carry"):
                d = int(other[j]) if j < len(other) else 0
                c = int(p.products[j - 1][0]) if 0 < j <= len(p.products) else 0
                written = p.products[j] if j < len(p.products) else ""
                mark = f"{d}{p.u}{c}" + (f"{written}={d * p.u + c:02d}" if recompute else "")
                ok = j < len(other) and written == f"{d * p.u + c:02d}"
                j += 1
            elif kind == "copy":
                source = m[3] if k == 0 else p.additions[k - 1][2]
                mark = _paired(p.additions[k][0], source) if paired else source
                ok = _same(p.additions[k][0], source)
                k += 1
            elif kind == "sum" and recompute:
                a, b, written = p.additions[s]
                right = _rev(int(a[::-1]) + int(b[::-1]))
                mark = _paired(written, right) if paired else f"={right}"
                ok = _same(written, right) if paired else written == right
                s += 1
            labels.append(ok)
            marks.append(mark)
        return Verification(tuple(labels), tuple(marks))

    def _invariant_holds(self, parsed: tuple[int, int, int], step: str) -> bool:
        x, y, r = parsed
        if (m := _ANSWER.match(step)) is not None:
            return int(self.layout.read_answer(m[1])) == x * y + r
        p = self.layout.parse(step)
        new = self.layout.parse_state(p.state) if p else None
        return new is not None and new[0] * new[1] + new[2] == x * y + r

    def elements(self, state: str, step: str) -> list[tuple[str, bool]]:
        """(kind, correct) for each element the step writes, in order: detailed verification.

        Each element is compared with what the expert writes for the same choice of operand and
        digit, so a different but valid choice is not an error. Kinds: choice, operand, product
        or carry (a digit product that is right but for its carry), delta, copy / align / sum
        (an addition's r, shifted delta and result), count (additions missing or extra), state;
        an answer step is one "answer" element; an unreadable step one "format" element.
        """
        parsed = self.layout.parse_state(state)
        if parsed is None:
            return [("format", False)]
        if _ANSWER.match(step):
            return [("answer", self._invariant_holds(parsed, step))]
        p = self.layout.parse(step)
        if p is None:
            return [("format", False)]
        x, y, _ = parsed
        own, other = (x, y) if p.operand == "x" else (y, x)
        want = self.layout.parts(state, p.operand, p.u)
        out = [("choice", p.u in _digits(own))]
        if want.reduced:
            out.append(("operand", p.reduced == want.reduced))
        other_digits = _digits(other)
        for j, w in enumerate(p.products):
            ok = j < len(want.products) and w == want.products[j]
            right_product = j < len(other_digits) and 0 <= int(w) - other_digits[j] * p.u <= 8
            out.append(("product" if ok or not right_product else "carry", ok))
        if len(p.products) < len(want.products):
            out.append(("product", False))
        out.append(("delta", p.delta == want.delta))
        for k, fields in enumerate(p.additions):
            expected = want.additions[k] if k < len(want.additions) else None
            kinds = _ADDITION_KINDS[len(fields)]
            out += [(kind, expected is not None and f == e) for kind, f, e in zip(kinds, fields, expected or fields)]
        if len(p.additions) != len(want.additions):
            out.append(("count", False))
        out.append(("state", p.state == want.state))
        return out

    def diagnose(self, state: str, step: str) -> str | None:
        """The kind of the first wrong element of ``step``, or None if it is all correct."""
        return next((kind for kind, ok in self.elements(state, step) if not ok), None)

    def check_answer(self, problem: Problem, answer: str) -> bool:
        return answer.strip() == problem.answer


def _same(written: str, right: str) -> bool:
    """Two numbers written least-significant digit first are equal (zero padding is alignment)."""
    return written.rstrip("0") == right.rstrip("0")


def _paired(written: str, right: str) -> str:
    """``written`` and ``right`` (LSD) interleaved digit by digit, the shorter padded with 0s:
    ``_paired("753", "75")`` is ``"775530"``; they are equal when every pair is."""
    width = max(len(written), len(right))
    return "".join(w + r for w, r in zip(written.ljust(width, "0"), right.ljust(width, "0")))


def _expert_operand(x: int, y: int) -> str:
    """Remove digits from the operand with fewer distinct non-zero digits (fewer steps); ties: y."""
    nx = len(set(_digits(x)) - {0})
    ny = len(set(_digits(y)) - {0})
    return "x" if nx < ny else "y"


def _random_number(n_digits: int, rng: random.Random) -> int:
    return rng.randint(10 ** (n_digits - 1) if n_digits > 1 else 1, 10**n_digits - 1)
