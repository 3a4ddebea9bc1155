"""Reasoning tasks (pure Python): multiplication and Sudoku, with their expert and verifier."""

from collections.abc import Callable

from cot_ray.tasks.base import (
    DIFFICULTIES,
    FAMILIES,
    IN_DISTRIBUTION,
    NEGATIVE,
    POSITIVE,
    Difficulty,
    Problem,
    Task,
    TaskFamily,
    Transition,
    Verification,
    check_difficulty,
    parse_labels,
    question_key,
    step_is_right,
)
from cot_ray.tasks.mult import LsdLayout, MsdLayout, Multiplication
from cot_ray.tasks.sudoku import BoardLayout, FillsLayout, ListedLayout, SlotsLayout, Sudoku

TASKS: dict[str, Callable[[], Task]] = {
    "mult": lambda: Multiplication(LsdLayout(), "mult"),
    # the same, its detailed verification restating each digit product's and each copy's inputs
    "mult-restated": lambda: Multiplication(LsdLayout(), "mult-restated", marks="restated"),
    # the same, each product's and each sum's right value recomputed before its label
    "mult-recomputed": lambda: Multiplication(LsdLayout(), "mult-recomputed", marks="recomputed"),
    # the same, every long number compared written digit by digit beside the one it must equal
    "mult-paired": lambda: Multiplication(LsdLayout(), "mult-paired", marks="paired"),
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


def family_of(name: str) -> TaskFamily:
    """The family of the task called ``name`` (``mult-msd`` -> ``mult``)."""
    return get_task(name).family


def tasks_of(family: TaskFamily) -> tuple[str, ...]:
    """The names of every task of ``family``, in :data:`TASKS` order."""
    return tuple(name for name in TASKS if family_of(name) == family)


__all__ = [
    "DIFFICULTIES", "FAMILIES", "IN_DISTRIBUTION", "NEGATIVE", "POSITIVE", "Difficulty", "Problem", "Task",
    "TASKS", "TaskFamily", "Transition", "Verification", "check_difficulty", "family_of", "get_task",
    "parse_labels", "question_key", "step_is_right", "tasks_of", "Multiplication", "Sudoku",
]
