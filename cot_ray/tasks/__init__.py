"""Reasoning tasks (pure Python): multiplication and Sudoku, with their expert and verifier."""

from collections.abc import Callable

from cot_ray.tasks.base import (
    DIFFICULTIES,
    IN_DISTRIBUTION,
    NEGATIVE,
    POSITIVE,
    Problem,
    Task,
    Transition,
    Verification,
    check_difficulty,
    parse_labels,
)
from cot_ray.tasks.mult import LsdLayout, MsdLayout, Multiplication
from cot_ray.tasks.sudoku import BoardLayout, FillsLayout, ListedLayout, SlotsLayout, Sudoku

TASKS: dict[str, Callable[[], Task]] = {
    "mult": lambda: Multiplication(LsdLayout(), "mult"),
    "mult-msd": lambda: Multiplication(MsdLayout(), "mult-msd"),  # the first layout, a baseline
    "sudoku": lambda: Sudoku(FillsLayout(), "sudoku"),
    "sudoku-listed": lambda: Sudoku(ListedLayout(), "sudoku-listed"),  # the paper's step: listings, fills, board
    "sudoku-slots": lambda: Sudoku(SlotsLayout(), "sudoku-slots"),  # unit listings in fixed slots, then the board
    "sudoku-board": lambda: Sudoku(BoardLayout(), "sudoku-board", hidden_singles=False),  # the new board alone
    # the same, its detailed verification restating each changed cell before its label
    "sudoku-board-restated": lambda: Sudoku(BoardLayout(), "sudoku-board-restated", hidden_singles=False,
                                            restate=True),
}


def get_task(name: str) -> Task:
    """The task called ``name``; raises ``ValueError`` naming the known tasks otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]()


__all__ = [
    "DIFFICULTIES", "IN_DISTRIBUTION", "NEGATIVE", "POSITIVE", "Problem", "Task", "TASKS",
    "Transition", "Verification", "check_difficulty", "get_task", "parse_labels",
    "Multiplication", "Sudoku",
]
