"""How a Sudoku step is written: four layouts, objects like ``mult``'s ``LsdLayout``/``MsdLayout``.

Every layout ends its step with the whole new board, which T takes as the next state; they
differ in what comes before it (the task's docstring shows each one):

- :class:`FillsLayout` (task ``sudoku``): the cells filled, as ``rcv`` triples;
- :class:`ListedLayout` (``sudoku-listed``, the paper's step): the numbers present in each row,
  column and block, then the fills;
- :class:`SlotsLayout` (``sudoku-slots``): the same listings in nine fixed slots per unit;
- :class:`BoardLayout` (``sudoku-board``): the new board alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cot_ray.tasks.sudoku.board import UNITS, format_board

_FILLS = r"(?P<fills>\??[0-8][0-8][1-9](?:,\??[0-8][0-8][1-9])*)"
_LIST = ":".join([r"(?:[1-9]*,){8}[1-9]*"] * 3)
_SLOTS = ":".join([r"(?:[0-9]{9},){8}[0-9]{9}"] * 3)

Fill = tuple[int, int, bool]
"""(cell, value, is a guess): one cell a step fills."""


@dataclass(frozen=True, kw_only=True)
class SudokuStep:
    """The parts a step writes; ``listing`` and ``fills`` are "" in layouts that do not write them."""

    listing: str
    fills: str
    board: str


def listing(board: list[int]) -> str:
    """The numbers present in each row, column and block (the ``sudoku-listed`` step's first part)."""
    groups = ["".join(map(str, sorted({board[i] for i in unit} - {0}))) for unit in UNITS]
    return ":".join(",".join(groups[k:k + 9]) for k in (0, 9, 18))


def slot_listing(board: list[int]) -> str:
    """Every row, column and block in nine slots (the ``sudoku-slots`` step's first part)."""
    groups = ["".join(str(v) if v in present else "0" for v in range(1, 10))
              for present in ({board[i] for i in unit} for unit in UNITS)]
    return ":".join(",".join(groups[k:k + 9]) for k in (0, 9, 18))


def _marks(fills: list[Fill]) -> str:
    return ",".join(f"{'?' if guess else ''}{cell // 9}{cell % 9}{value}" for cell, value, guess in sorted(fills))


class SudokuLayout:
    """What every layout shares: read a step with its ``pattern``, write the fields it has."""

    pattern: re.Pattern[str]
    shape: str
    """The step's shape, for error messages."""
    writes_fills: bool

    def listing(self, board: list[int]) -> str:
        """What the step lists of the board it starts from ("" where the layout lists nothing)."""
        return ""

    def parse(self, step: str) -> SudokuStep | None:
        m = self.pattern.match(step)
        if m is None:
            return None
        parts = m.groupdict()
        return SudokuStep(listing=parts.get("listing") or "", fills=parts.get("fills") or "", board=m["board"])

    def write(self, board: list[int], fills: list[Fill], after: list[int] | None = None) -> str:
        """The step from ``board`` that fills ``fills``; its new board is ``after`` when given (a
        corrupted step may change more than its fills)."""
        new = list(board) if after is None else list(after)
        for cell, value, _ in fills if after is None else ():
            new[cell] = value
        fields = (self.listing(board), _marks(fills) if self.writes_fills else "", format_board(new))
        return ";".join(field for field in fields if field)


class FillsLayout(SudokuLayout):
    """The fills, then the new board: ``rcv,...;<81 digits>``."""

    pattern = re.compile(rf"^{_FILLS};(?P<board>[0-9]{{81}})$")
    shape = "rcv,...;<81 digits>"
    writes_fills = True


class ListedLayout(SudokuLayout):
    """The paper's full step: unit listings, fills, board: ``<rows>:<columns>:<blocks>;rcv,...;<81 digits>``."""

    pattern = re.compile(rf"^(?P<listing>{_LIST});{_FILLS};(?P<board>[0-9]{{81}})$")
    shape = "<rows>:<columns>:<blocks>;rcv,...;<81 digits>"
    writes_fills = True

    def listing(self, board: list[int]) -> str:
        return listing(board)


class SlotsLayout(SudokuLayout):
    """Unit listings in nine fixed slots, then the board (the fills show in it alone)."""

    pattern = re.compile(rf"^(?P<listing>{_SLOTS});(?P<board>[0-9]{{81}})$")
    shape = "<rows>:<columns>:<blocks> in 9 slots each;<81 digits>"
    writes_fills = False

    def listing(self, board: list[int]) -> str:
        return slot_listing(board)


class BoardLayout(SudokuLayout):
    """The new board alone: ``<81 digits>``."""

    pattern = re.compile(r"^(?P<board>[0-9]{81})$")
    shape = "<81 digits>"
    writes_fills = False
