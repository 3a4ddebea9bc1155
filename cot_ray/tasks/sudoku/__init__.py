"""9x9 Sudoku: the board (``board``), the step layouts (``layouts``) and the task (``task``)."""

from cot_ray.tasks.sudoku.board import (
    ALL,
    PEERS,
    UNITS,
    candidates,
    count_solutions,
    format_board,
    has_clash,
    parse_board,
    random_solution,
    solve,
)
from cot_ray.tasks.sudoku.layouts import (
    BoardLayout,
    FillsLayout,
    ListedLayout,
    SlotsLayout,
    SudokuLayout,
    SudokuStep,
    listing,
    slot_listing,
)
from cot_ray.tasks.sudoku.task import BLANK_RANGES, Sudoku

__all__ = [
    "ALL", "BLANK_RANGES", "PEERS", "UNITS", "BoardLayout", "FillsLayout", "ListedLayout", "SlotsLayout",
    "Sudoku", "SudokuLayout", "SudokuStep", "candidates", "count_solutions", "format_board", "has_clash",
    "listing", "parse_board", "random_solution", "slot_listing", "solve",
]
