"""9x9 Sudoku as a Markov Thought Process (paper section 3.1, appendix D.2.2).

State: the board as 81 digits, row by row, 0 for a blank. A step lists the cells it fills as
``rcv`` triples (row, column, value; a guess is marked ``?``) and then writes the whole new board,
which T takes as the next state:

    014,285?733;<81 digits>

The expert fills every naked single (a blank with exactly one candidate) and every hidden single
(a value with one possible place in a row, column or block) at once; when there is none it guesses
in a blank with the fewest candidates. Hidden singles (Chi & Lange 2013, the paper's reference)
shorten the traces (measured on 100 puzzles per level, naked singles only -> with hidden ones:
mean steps 2.8 -> 1.9 ID-Easy, 15.8 -> 11.0 ID-Hard with 6% -> 0% over the budget of 32, 40.8 ->
35.3 OOD-Hard with 89% -> 65% over it). Expert guesses use the known solution, so expert traces
never reach a dead end (a decision the paper leaves open, section 9). The step whose board has no
blank left is the answer.

The ``sudoku-listed`` variant writes the paper's full step (paper.md section 3.3): first the
numbers present in each row, each column and each block (ascending; groups split by ``,``, the
three lists by ``:``), then the fills, then the board. The candidates of a blank are then the
digits missing from three short lists the step itself wrote:

    1356,24789,...:...:...;014,285?733;<81 digits>

The ``sudoku-slots`` variant is built for a small transformer to learn: every unit is listed in
nine fixed slots (slot v holds v when the unit has it, else 0), and the new board follows at
once, the fills being visible in it:

    100050009,...:...:...;<81 digits>

Every step then has the same length and every part of it a fixed offset, so the candidates of
the cell written at offset k of the board are read from three slot groups at fixed offsets from
k, the way the aligned additions of ``mult`` line digits up.
"""

from __future__ import annotations

import operator
import random
import re

from cot_ray.tasks.base import Problem, Transition, Verification, check_difficulty

BLANK_RANGES: dict[str, tuple[int, int]] = {
    "id-easy": (9, 35),
    "id-hard": (36, 53),
    "ood-hard": (54, 62),
    "toy": (3, 8),
}
"""Number of blanks b per difficulty, inclusive (paper: 9<=b<36, 36<=b<54, 54<=b<63)."""

_BOARD = re.compile(r"[0-9]{81}")  # used with fullmatch: "$" would let a trailing newline in
_FILLS = r"(?P<fills>\??[0-8][0-8][1-9](?:,\??[0-8][0-8][1-9])*)"
_LIST = ":".join([r"(?:[1-9]*,){8}[1-9]*"] * 3)
_SLOTS = ":".join([r"(?:[0-9]{9},){8}[0-9]{9}"] * 3)
LAYOUTS: dict[str, tuple[re.Pattern[str], str]] = {
    "fills": (re.compile(rf"^{_FILLS};(?P<board>[0-9]{{81}})$"), "rcv,...;<81 digits>"),
    "listed": (re.compile(rf"^(?P<listing>{_LIST});{_FILLS};(?P<board>[0-9]{{81}})$"),
               "<rows>:<columns>:<blocks>;rcv,...;<81 digits>"),
    "slots": (re.compile(rf"^(?P<listing>{_SLOTS});(?P<board>[0-9]{{81}})$"),
              "<rows>:<columns>:<blocks> in 9 slots each;<81 digits>"),
    "board": (re.compile(r"^(?P<board>[0-9]{81})$"), "<81 digits>"),
}
"""Step layout -> (its pattern, its shape for error messages)."""
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


def parse_board(text: str) -> list[int] | None:
    return list(text.encode().translate(_VALUES)) if _BOARD.fullmatch(text) else None


def format_board(board: list[int]) -> str:
    return "".join(map(str, board))


def listing(board: list[int]) -> str:
    """The numbers present in each row, column and block (the ``sudoku-listed`` step's first part)."""
    groups = ["".join(map(str, sorted({board[i] for i in unit} - {0}))) for unit in UNITS]
    return ":".join(",".join(groups[k:k + 9]) for k in (0, 9, 18))


def slot_listing(board: list[int]) -> str:
    """Every row, column and block in nine slots (the ``sudoku-slots`` step's first part)."""
    groups = ["".join(str(v) if v in present else "0" for v in range(1, 10))
              for present in ({board[i] for i in unit} for unit in UNITS)]
    return ":".join(",".join(groups[k:k + 9]) for k in (0, 9, 18))


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


class Sudoku:
    """The 9x9 Sudoku task.

    ``unique=True`` only removes a clue while the puzzle keeps a unique solution (slower, and it
    may stop short of the requested blank count on hard levels, in which case it retries with a
    new grid); the default keeps every puzzle consistent with its generating grid, which the
    answer check (any valid grid that keeps the clues) needs.
    """

    def __init__(self, unique: bool = False, layout: str = "fills", hidden_singles: bool = True) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown sudoku layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        self.unique = unique
        self.layout = layout
        self.hidden_singles = hidden_singles
        self.name = "sudoku" if layout == "fills" else f"sudoku-{layout}"
        self._step, self._shape = LAYOUTS[layout]
        self._listing = {"listed": listing, "slots": slot_listing}.get(layout)

    def generate(self, difficulty: str, rng: random.Random) -> Problem:
        lo, hi = BLANK_RANGES[check_difficulty(difficulty)]
        blanks = rng.randint(lo, hi)
        while True:
            solution = random_solution(rng)
            puzzle = self._remove(solution, blanks, rng)
            if puzzle is not None:
                break
        return Problem(self.name, difficulty, {"puzzle": format_board(puzzle)}, format_board(solution))

    def _remove(self, solution: list[int], blanks: int, rng: random.Random) -> list[int] | None:
        puzzle = list(solution)
        order = rng.sample(range(81), 81)
        removed = 0
        for cell in order:
            if removed == blanks:
                break
            value, puzzle[cell] = puzzle[cell], 0
            if self.unique and count_solutions(puzzle) != 1:
                puzzle[cell] = value
                continue
            removed += 1
        return puzzle if removed == blanks else None

    def initial_state(self, problem: Problem) -> str:
        return str(problem.question["puzzle"])

    def validate_state(self, state: str) -> str | None:
        if not _BOARD.fullmatch(state):
            return f"a sudoku state is 81 digits 0-9 (0 = blank), got {len(state)} characters"
        return None

    def transition(self, state: str, step: str) -> Transition:
        m = self._step.match(step)
        if m is None:
            return Transition(valid=False, error=f"step does not match '{self._shape}'")
        board = m["board"]
        if "0" not in board:
            return Transition(valid=True, answer=board)
        return Transition(valid=True, next_state=board)

    def expert_step(self, state: str, problem: Problem | None = None) -> str:
        board = parse_board(state)
        if board is None:
            raise ValueError(f"not a sudoku state: {state!r}")
        solution = parse_board(problem.answer) if problem is not None else None
        if solution is None or any(b and b != s for b, s in zip(board, solution)):
            solution = solve(board)
        blanks = [i for i, v in enumerate(board) if v == 0]
        cands = {i: candidates(board, i) for i in blanks}
        singles = _singles(cands, self.hidden_singles)
        if singles:
            fills = [(i, v, False) for i, v in sorted(singles.items())]
        else:
            cell = min(blanks, key=lambda i: (len(cands[i]), i))
            value = solution[cell] if solution is not None else min(cands[cell] or {1})
            fills = [(cell, value, True)]
        return self._write(board, fills)

    def perturb_step(self, state: str, rng: random.Random) -> str:
        """Fill one blank with a value that clashes with a peer: a rule-breaking, wrong step."""
        board = parse_board(state) or [0] * 81
        blanks = [i for i, v in enumerate(board) if v == 0] or [0]
        cell = rng.choice(blanks)
        peer_values = sorted({board[j] for j in PEERS[cell]} - {0}) or [1]
        return self._write(board, [(cell, rng.choice(peer_values), False)])

    def _write(self, board: list[int], fills: list[tuple[int, int, bool]]) -> str:
        new = list(board)
        for cell, value, _ in fills:
            new[cell] = value
        step = format_board(new)
        if "fills" in self._step.groupindex:  # the other layouts show the fills in the board alone
            marks = (f"{'?' if guess else ''}{cell // 9}{cell % 9}{value}" for cell, value, guess in sorted(fills))
            step = f"{','.join(marks)};{step}"
        return f"{self._listing(board)};{step}" if self._listing else step

    def verify(self, state: str, step: str, detailed: bool = False) -> Verification:
        """Rule-consistency, as the paper's expert verifier: no clue or earlier number changed and
        no repeat in any row, column or block. Detailed: one label per cell of the new board."""
        m = self._step.match(step)
        if m is None or not _BOARD.fullmatch(state):
            return Verification((False,))
        new_board = m["board"]
        after = new_board.encode().translate(_VALUES)
        counts = _unit_counts(after)
        if _keeps_numbers(state, new_board) and not counts & _ANY_REPEAT:
            return Verification((True,) * 81 if detailed else (True,))
        if not detailed:
            return Verification((False,))
        before = state.encode().translate(_VALUES)
        return Verification(tuple(not counts & repeat[a] and (b == 0 or b == a)
                                  for repeat, b, a in zip(_REPEAT, before, after)))

    def diagnose(self, state: str, step: str) -> str | None:
        """What is first wrong with ``step``: "format" (unreadable), "listing" (``sudoku-listed`` and
        ``sudoku-slots``: a row, column or block listed wrong), "changed" (a clue or earlier number altered), "clash"
        (a repeat in a row, column or block), or None (rule-consistent; a wrong guess is
        rule-consistent, and only the solution can tell it apart)."""
        m = self._step.match(step)
        if m is None or not _BOARD.fullmatch(state):
            return "format"
        if self._listing and m["listing"] != self._listing(parse_board(state) or []):
            return "listing"
        if not _keeps_numbers(state, m["board"]):
            return "changed"
        return None if self.verify(state, step).ok else "clash"

    def dead_end(self, state: str, step: str) -> bool:
        """Is ``step`` rule-consistent, yet its board has no solution? That is a wrong guess (or
        a wrong fill that breaks no rule yet): the expert verifier accepts it, because a rule check
        cannot see it (paper.md section 3.3); only a search can, or RTBS by backtracking."""
        m = self._step.match(step)
        if m is None or self.diagnose(state, step) is not None:
            return False
        return solve(parse_board(m["board"]) or []) is None

    def check_answer(self, problem: Problem, answer: str) -> bool:
        board = parse_board(answer.strip())
        clues = parse_board(str(problem.question["puzzle"]))
        if board is None or clues is None or 0 in board or has_clash(board):
            return False
        return all(c == 0 or c == b for c, b in zip(clues, board))


def _keeps_numbers(before: str, after: str) -> bool:
    """Does ``after`` keep every number of ``before``? (Both are well-formed boards.)

    Compares all 81 characters at once: the bytes of both boards as integers, XOR-ed, masked to
    the cells ``before`` has filled (0xFF bytes there, 0x00 at blanks)."""
    raw = before.encode()
    filled = int.from_bytes(raw.translate(_FILLED))
    return (int.from_bytes(raw) ^ int.from_bytes(after.encode())) & filled == 0


def _singles(cands: dict[int, set[int]], hidden: bool = True) -> dict[int, int]:
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
