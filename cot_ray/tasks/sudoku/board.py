"""The 9x9 board: its units, candidates, rule check, solver and random full grids.

Everything here reads boards as lists of 81 values (0 for a blank) or as their 81-digit text;
the step layouts (``layouts.py``) and the task (``task.py``) build on it.
"""

from __future__ import annotations

import operator
import random
import re

_BOARD = re.compile(r"[0-9]{81}")  # used with fullmatch: "$" would let a trailing newline in
UNITS: tuple[tuple[int, ...], ...] = tuple(
    [tuple(r * 9 + c for c in range(9)) for r in range(9)]
    + [tuple(r * 9 + c for r in range(9)) for c in range(9)]
    + [tuple((br + r) * 9 + bc + c for r in range(3) for c in range(3)) for br in (0, 3, 6) for bc in (0, 3, 6)]
)
PEERS: tuple[frozenset[int], ...] = tuple(
    frozenset(j for unit in UNITS if i in unit for j in unit if j != i) for i in range(81)
)
ALL = frozenset(range(1, 10))
_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_FILLED = bytes.maketrans(b"0123456789", b"\x00" + b"\xff" * 9)


def is_board(text: str) -> bool:
    return _BOARD.fullmatch(text) is not None


def parse_board(text: str) -> list[int] | None:
    return list(text.encode().translate(_VALUES)) if _BOARD.fullmatch(text) else None


def format_board(board: list[int]) -> str:
    return "".join(map(str, board))


def candidates(board: list[int], cell: int) -> set[int]:
    return set(ALL - {board[j] for j in PEERS[cell]})


# Clash detection is the verifier's inner loop (the Serve endpoint, stage-III labelling), so it
# counts with integer arithmetic instead of a Python loop per unit: every (unit, value) pair owns
# a 4-bit counter inside one big int, and a cell holding value v adds 1 to the counters of
# (its row, v), (its column, v) and (its block, v). A count of 2 or more (bits 1-3 of a counter
# set) is a repeat. A count never exceeds 9, so counters never overflow into each other.
def _counter_bit(unit: int, value: int) -> int:
    return 1 << 4 * (unit * 9 + value - 1)


_COUNT: tuple[tuple[int, ...], ...] = tuple(
    (0, *(sum(_counter_bit(u, v) for u, unit in enumerate(UNITS) if cell in unit) for v in ALL))
    for cell in range(81)
)
"""``_COUNT[cell][value]``: what a cell holding ``value`` adds to the counters (0 for a blank)."""
_PAIR_COUNT: tuple[tuple[int, ...], ...] = tuple(
    tuple(_COUNT[2 * k][a] + (_COUNT[2 * k + 1][b] if 2 * k + 1 < 81 else 0) for a in range(10) for b in range(10))
    for k in range(41)
)
"""``_PAIR_COUNT[k][10 * a + b]``: what cells 2k and 2k+1 holding a and b add (half the additions)."""
_REPEAT: tuple[tuple[int, ...], ...] = tuple(tuple(bits * 0b1110 for bits in row) for row in _COUNT)
"""``_REPEAT[cell][value]``: bits set when one of that cell's three counters for ``value`` is >= 2."""
_ANY_REPEAT = sum(_counter_bit(u, v) for u in range(len(UNITS)) for v in ALL) * 0b1110
_TIMES_TEN = bytes(min(10 * v, 255) for v in range(256))


def _unit_counts(values: bytes) -> int:
    """All 243 counters of a board given as 81 bytes of values 0-9."""
    values += b"\0"  # 82 bytes: 41 pairs, the last one is cell 80 and this padding
    pair_index = map(operator.add, values[0::2].translate(_TIMES_TEN), values[1::2])
    return sum(map(tuple.__getitem__, _PAIR_COUNT, pair_index))


def has_clash(board: list[int]) -> bool:
    """Does any non-zero value repeat in a row, column or block?"""
    return _unit_counts(bytes(board)) & _ANY_REPEAT != 0


def solve(board: list[int], rng: random.Random | None = None) -> list[int] | None:
    """One solution of ``board`` (depth-first, fewest candidates first), or None if there is none."""
    return next(_solutions(list(board), rng), None)


def count_solutions(board: list[int], limit: int = 2) -> int:
    count = 0
    for _ in _solutions(list(board), None):
        count += 1
        if count >= limit:
            break
    return count


def _solutions(board: list[int], rng: random.Random | None):
    if has_clash(board):
        return
    yield from _search(board, rng)


def _search(board: list[int], rng: random.Random | None):
    best, best_cands = -1, None
    for i, v in enumerate(board):
        if v == 0:
            cands = candidates(board, i)
            if best_cands is None or len(cands) < len(best_cands):
                best, best_cands = i, cands
                if len(cands) <= 1:
                    break
    if best_cands is None:
        yield list(board)
        return
    order = sorted(best_cands)
    if rng is not None:
        rng.shuffle(order)
    for v in order:
        board[best] = v
        yield from _search(board, rng)
    board[best] = 0


def random_solution(rng: random.Random) -> list[int]:
    """A uniformly shuffled valid full grid: a base pattern under the Sudoku symmetry group."""
    def shuffled_groups() -> list[int]:
        bands = rng.sample(range(3), 3)
        return [b * 3 + r for b in bands for r in rng.sample(range(3), 3)]

    rows, cols, digits = shuffled_groups(), shuffled_groups(), rng.sample(range(1, 10), 9)
    grid = [digits[(3 * (r % 3) + r // 3 + c) % 9] for r in rows for c in cols]
    if rng.random() < 0.5:
        grid = [grid[c * 9 + r] for r in range(9) for c in range(9)]
    return grid


def keeps_numbers(before: str, after: str) -> bool:
    """Does ``after`` keep every number of ``before``? (Both are well-formed boards.)

    Compares all 81 characters at once: the bytes of both boards as integers, XOR-ed, masked to
    the cells ``before`` has filled (0xFF bytes there, 0x00 at blanks)."""
    raw = before.encode()
    filled = int.from_bytes(raw.translate(_FILLED))
    return (int.from_bytes(raw) ^ int.from_bytes(after.encode())) & filled == 0


def singles(cands: dict[int, set[int]], hidden: bool = True) -> dict[int, int]:
    """Forced fills: naked singles (one candidate) and, if ``hidden``, hidden singles (a value with
    one place in a row, column or block). Both hold in every solution, so filling them together is
    safe."""
    forced = {i: next(iter(c)) for i, c in cands.items() if len(c) == 1}
    for unit in (UNITS if hidden else ()):
        for value in range(1, 10):
            places = [i for i in unit if i in cands and value in cands[i]]
            if len(places) == 1:
                forced.setdefault(places[0], value)
    return forced


def rule_labels(before: str, after: str, detailed: bool = False) -> tuple[bool, ...]:
    """The expert verifier's rule check of board ``after`` written at board ``before`` (both
    well-formed): no clue or earlier number changed and no repeat in any row, column or block.
    Binary: one label. Detailed: one label per cell the step changed (is it a blank, and does its
    value repeat no peer's?), in cell order; unchanged cells carry none, so a verifier learns to
    look at what the step wrote. A step that changes nothing is one label; a board already broken
    where the step did not write (after an accepted wrong step) gets one ✗ at the end."""
    values = after.encode().translate(_VALUES)
    counts = _unit_counts(values)
    ok = keeps_numbers(before, after) and not counts & _ANY_REPEAT
    if not detailed:
        return (ok,)
    prior = before.encode().translate(_VALUES)
    labels = [not counts & _REPEAT[i][a] and b == 0 for i, (b, a) in enumerate(zip(prior, values)) if b != a]
    if not labels:
        return (ok,)
    return (*labels, False) if not ok and all(labels) else tuple(labels)


def changed_cells(before: str, after: str) -> list[int]:
    """The cells where board ``after`` differs from ``before``: what a detailed label judges."""
    return [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
