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
never reach a dead end (a decision the paper leaves open: docs/decisions.md). The step whose board has no
blank left is the answer.

The ``sudoku-listed`` variant writes the paper's full step (paper Sec. 3.1, App. D.2.2): first the
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

import random

from cot_ray.tasks.base import Problem, TaskFamily, Transition, Verification, check_difficulty
from cot_ray.tasks.sudoku.board import (
    PEERS,
    candidates,
    changed_cells,
    count_solutions,
    format_board,
    has_clash,
    is_board,
    keeps_numbers,
    parse_board,
    random_solution,
    rule_labels,
    singles,
    solve,
)
from cot_ray.tasks.sudoku.layouts import FillsLayout, SudokuLayout

BLANK_RANGES: dict[str, tuple[int, int]] = {
    "id-easy": (9, 35),
    "id-hard": (36, 53),
    "ood-hard": (54, 62),
    "toy": (3, 8),
}
"""Number of blanks b per difficulty, inclusive (paper: 9<=b<36, 36<=b<54, 54<=b<63)."""


class Sudoku:
    """The 9x9 Sudoku task.

    ``unique=True`` only removes a clue while the puzzle keeps a unique solution (slower, and it
    may stop short of the requested blank count on hard levels, in which case it retries with a
    new grid); the default keeps every puzzle consistent with its generating grid, which the
    answer check (any valid grid that keeps the clues) needs.
    """

    family: TaskFamily = "sudoku"

    def __init__(self, layout: SudokuLayout | None = None, name: str = "sudoku", unique: bool = False,
                 hidden_singles: bool = True, restate: bool = False) -> None:
        self.layout = layout or FillsLayout()
        self.restate = restate
        """Detailed labels follow the cell they judge, written ``rcv`` (row, column, value)."""
        self.name = name
        self.unique = unique
        self.hidden_singles = hidden_singles

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
        if not is_board(state):
            return f"a sudoku state is 81 digits 0-9 (0 = blank), got {len(state)} characters"
        return None

    def transition(self, state: str, step: str) -> Transition:
        parts = self.layout.parse(step)
        if parts is None:
            return Transition(valid=False, error=f"step does not match '{self.layout.shape}'")
        board = parts.board
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
        forced = singles(cands, self.hidden_singles)
        if forced:
            fills = [(i, v, False) for i, v in sorted(forced.items())]
        else:
            cell = min(blanks, key=lambda i: (len(cands[i]), i))
            value = solution[cell] if solution is not None else min(cands[cell] or {1})
            fills = [(cell, value, True)]
        return self.layout.write(board, fills)

    def perturb_step(self, state: str, rng: random.Random) -> str:
        """Fill one blank with a value that clashes with a peer: a rule-breaking, wrong step."""
        board = parse_board(state) or [0] * 81
        blanks = [i for i, v in enumerate(board) if v == 0] or [0]
        cell = rng.choice(blanks)
        peer_values = sorted({board[j] for j in PEERS[cell]} - {0}) or [1]
        return self.layout.write(board, [(cell, rng.choice(peer_values), False)])

    def corruption_kinds(self, step: str) -> tuple[str, ...]:
        """The kinds :meth:`corrupt_step` can break (:mod:`cot_ray.tasks.sudoku.corruptions`)."""
        from cot_ray.tasks.sudoku.corruptions import KINDS

        return KINDS

    def corrupt_step(self, state: str, step: str, kind: str, rng: random.Random) -> str | None:
        """The right ``step`` at ``state`` with one rule of ``kind`` broken (None if it cannot be)."""
        from cot_ray.tasks.sudoku.corruptions import corrupt_step

        return corrupt_step(self, state, step, kind, rng)

    def verify(self, state: str, step: str, detailed: bool = False) -> Verification:
        """Rule-consistency, as the paper's expert verifier: no clue or earlier number changed and
        no repeat in any row, column or block. Detailed: one label per cell the step changed
        (:func:`rule_labels`), each after its cell when ``restate``."""
        parts = self.layout.parse(step)
        if parts is None or not is_board(state):
            return Verification((False,))
        labels = rule_labels(state, parts.board, detailed)
        if not (detailed and self.restate):
            return Verification(labels)
        marks = [f"{i // 9}{i % 9}{parts.board[i]}" for i in changed_cells(state, parts.board)]
        return Verification(labels, tuple((marks + [""])[:len(labels)] if marks else [""] * len(labels)))

    def diagnose(self, state: str, step: str) -> str | None:
        """What is first wrong with ``step``: "format" (unreadable), "listing" (``sudoku-listed`` and
        ``sudoku-slots``: a row, column or block listed wrong), "changed" (a clue or earlier number altered), "clash"
        (a repeat in a row, column or block), or None (rule-consistent; a wrong guess is
        rule-consistent, and only the solution can tell it apart)."""
        parts = self.layout.parse(step)
        if parts is None or not is_board(state):
            return "format"
        if parts.listing != self.layout.listing(parse_board(state) or []):
            return "listing"
        if not keeps_numbers(state, parts.board):
            return "changed"
        return None if self.verify(state, step).ok else "clash"

    def dead_end(self, state: str, step: str) -> bool:
        """Is ``step`` rule-consistent, yet its board has no solution? That is a wrong guess (or
        a wrong fill that breaks no rule yet): the expert verifier accepts it, because a rule check
        cannot see it (paper App. D.2.2); only a search can, or RTBS by backtracking."""
        parts = self.layout.parse(step)
        if parts is None or self.diagnose(state, step) is not None:
            return False
        return solve(parse_board(parts.board) or []) is None

    def check_answer(self, problem: Problem, answer: str) -> bool:
        board = parse_board(answer.strip())
        clues = parse_board(str(problem.question["puzzle"]))
        if board is None or clues is None or 0 in board or has_clash(board):
            return False
        return all(c == 0 or c == b for c, b in zip(clues, board))
