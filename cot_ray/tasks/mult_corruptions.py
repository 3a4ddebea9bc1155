"""Wrong multiplication steps with exactly one element wrong: the hard negatives of stage III.

A verifier that learns from the policy's own mistakes alone can learn which *states* are risky
instead of which *steps* are wrong (at the states where the policy errs, almost every sample is
wrong). Stage III therefore gives every state as many wrong steps as right ones; where the policy
wrote too few wrong ones, they come from here: a right step with one element changed, every later
element following from the wrong one as a consistent writer would (a wrong copy of r is added up
right), so the step is wrong by the expert verifier and its *first* wrong element is the one named.

Kinds (those of :meth:`Multiplication.elements`, the failure kinds the diagnostics count):
``operand`` (a digit zeroed that should not be, or not zeroed), ``product`` (a digit product),
``delta``, ``copy`` (r copied wrong into an addition), ``align`` (delta shifted to the wrong
place), ``sum``, ``count`` (an addition missing), ``state`` (the new state copied wrong) and
``answer`` (a wrong final answer). The LSD layout has them all; MSD writes no copies or aligned
additions, so it has ``state`` and ``answer`` only.
"""

from __future__ import annotations

import random
from dataclasses import replace

from cot_ray.tasks.base import step_is_right
from cot_ray.tasks.mult import LsdLayout, Multiplication, StepParts

STEP_KINDS: tuple[str, ...] = ("operand", "product", "delta", "copy", "align", "sum", "count", "state")
"""Corruption kinds of a step that removes a digit (LSD layout)."""
ANSWER_KINDS: tuple[str, ...] = ("answer",)
"""The corruption kind of an answer step."""
ATTEMPTS = 20
"""Random draws tried per corruption before giving up (some draws land on a right element)."""


def _rev(n: int) -> str:
    return str(n)[::-1]


def _change_digit(value: int, rng: random.Random, width: int | None = None) -> int:
    """``value`` with one decimal digit (among its own, or the first ``width``) replaced."""
    digits = _rev(value).ljust(width or 1, "0")
    j = rng.randrange(len(digits))
    new = str((int(digits[j]) + rng.randint(1, 9)) % 10)
    return int((digits[:j] + new + digits[j + 1:])[::-1])


class _Chain:
    """The aligned additions of an LSD step, written from r, delta and the zeroed positions, with
    at most one field of one addition written wrong (and every later field following from it)."""

    def __init__(self, r: int, delta_rev: str, positions: list[int]) -> None:
        self.r, self.delta_rev, self.positions = r, delta_rev, positions

    def write(self, kind: str | None = None, at: int = 0, rng: random.Random | None = None
              ) -> tuple[tuple[tuple[str, str, str], ...], int]:
        """(additions, final r) with ``kind`` ("copy", "align" or "sum") applied to addition ``at``."""
        r, out = self.r, []
        for k, i in enumerate(self.positions):
            copied = _change_digit(r, rng, len(str(r)) + 1) if kind == "copy" and k == at else r
            shift = i + (rng.choice((-1, 1)) if i else 1) if kind == "align" and k == at and rng else i
            shifted = "0" * shift + self.delta_rev
            total = copied + int(shifted[::-1])
            if kind == "sum" and k == at:
                total = _change_digit(total, rng)
            width = len(str(r + int(self.delta_rev[::-1]) * 10**i))  # as the right addition pads
            out.append(tuple(f.ljust(width, "0") for f in (_rev(copied), shifted, _rev(total))))
            r = total
        return tuple(out), r


def _delta_of(products: tuple[str, ...]) -> str:
    """delta (LSD) as the digit products write it: their units digits, then the last carry."""
    last_carry = products[-1][0]
    return "".join(p[1] for p in products) + ("" if last_carry == "0" else last_carry)


def _corrupt_parts(layout: LsdLayout, state: str, p: StepParts, kind: str, rng: random.Random) -> StepParts:
    """One draw of ``kind`` applied to the right parts ``p`` of a step at ``state``."""
    parsed = layout.parse_state(state)
    assert parsed is not None
    r = parsed[2]
    own = state.split("*")[0] if p.operand == "x" else state.split("*")[1].split("+")[0]
    positions = [i for i, ch in enumerate(own) if ch == str(p.u)]
    reduced, products, delta = p.reduced, p.products, p.delta
    chain_kind, at = None, rng.randrange(len(positions))
    if kind == "operand":
        keep = rng.choice([i for i, ch in enumerate(reduced) if ch != "0"] or [positions[0]])
        reduced = reduced[:keep] + ("0" if reduced[keep] != "0" else str(p.u)) + reduced[keep + 1:]
    elif kind == "product":
        j = rng.randrange(len(products))
        products = (*products[:j], f"{(int(products[j]) + 10 * rng.randint(1, 9) + rng.randint(1, 9)) % 100:02d}",
                    *products[j + 1:])
        delta = _delta_of(products)
    elif kind == "delta":
        delta = _rev(_change_digit(int(delta[::-1]), rng))
    elif kind in ("copy", "align", "sum"):
        chain_kind = kind
    elif kind == "count":
        positions = positions[:-1]
    chain = _Chain(r, delta, positions)
    additions, new_r = chain.write(chain_kind, at if chain_kind != "count" else 0, rng)
    xs, rest = p.state.split("*")
    ys = rest.split("+")[0]
    xs, ys = (reduced, ys) if p.operand == "x" else (xs, reduced)
    if kind == "state":
        new_r = _change_digit(new_r, rng)
    return replace(p, reduced=reduced, products=products, delta=delta, additions=additions,
                   state=f"{xs}*{ys}+{_rev(new_r)}")


def corrupt_step(task: Multiplication, state: str, step: str, kind: str, rng: random.Random) -> str | None:
    """``step`` (a right step at ``state``) with ``kind`` wrong, or None when no draw of that kind
    makes the step wrong in that element (e.g. ``count`` needs an addition to drop, ``copy`` in MSD).

    Every returned step is wrong by the expert verifier and ``task.diagnose`` names ``kind``."""
    for _ in range(ATTEMPTS):
        candidate = _draw(task, state, step, kind, rng)
        if candidate is None:
            return None
        if not step_is_right(task, state, candidate) and task.diagnose(state, candidate) == kind:
            return candidate
    return None


def _draw(task: Multiplication, state: str, step: str, kind: str, rng: random.Random) -> str | None:
    parsed = task.layout.parse_state(state)
    if parsed is None:
        return None
    if step.startswith("a"):
        if kind != "answer":
            return None
        return task.layout.answer(_change_digit(parsed[0] * parsed[1] + parsed[2], rng))
    p = task.layout.parse(step)
    if p is None or kind not in kinds_of(task, step):
        return None
    if kind == "state":
        nx, rest = p.state.split("*")
        ny, nr = rest.split("+")
        wrong = task.layout.answer(_change_digit(int(task.layout.read_answer(nr)), rng))[1:]
        return task.layout.write(replace(p, state=f"{nx}*{ny}+{wrong}"))
    return task.layout.write(_corrupt_parts(task.layout, state, p, kind, rng))


def kinds_of(task: Multiplication, step: str) -> tuple[str, ...]:
    """The corruption kinds that apply to ``step`` in ``task``'s layout."""
    if step.startswith("a"):
        return ANSWER_KINDS
    return STEP_KINDS if isinstance(task.layout, LsdLayout) else ("state",)
