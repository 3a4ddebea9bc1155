"""Wrong Sudoku steps with one rule broken: the hard negatives of stage III (see
:mod:`cot_ray.tasks.mult_corruptions` for why stage III needs them).

Two kinds, the rule-breaking failures the diagnostics count (``Sudoku.diagnose``):

- ``clash``: one cell the step fills (or, if it fills none, one blank) written with a value a peer
  already holds: a repeat in a row, column or block;
- ``changed``: one clue or earlier number of the state written as another digit.

The rest of the step (the listing and fills of the layouts that write them) stays as the right
step wrote it, so the one broken rule is the only thing wrong.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from cot_ray.tasks.sudoku.board import PEERS, parse_board

if TYPE_CHECKING:
    from cot_ray.tasks.sudoku.task import Sudoku

KINDS: tuple[str, ...] = ("clash", "changed")


def corrupt_step(task: Sudoku, state: str, step: str, kind: str, rng: random.Random) -> str | None:
    """``step`` (a right step at ``state``) with one rule of ``kind`` broken, or None (no such cell)."""
    before, after = parse_board(state), parse_board(step[-81:])
    if before is None or after is None or kind not in KINDS:
        return None
    new = list(after)
    if kind == "clash":
        filled = [i for i in range(81) if before[i] == 0 and after[i] != 0]
        cells = [i for i in (filled or [i for i in range(81) if after[i] == 0])
                 if {after[j] for j in PEERS[i]} - {0, after[i]}]
        if not cells:
            return None
        cell = rng.choice(cells)
        new[cell] = rng.choice(sorted({after[j] for j in PEERS[cell]} - {0, after[cell]}))
    else:
        givens = [i for i in range(81) if before[i] != 0]
        if not givens:
            return None
        cell = rng.choice(givens)
        new[cell] = rng.choice([v for v in range(1, 10) if v != before[cell]])
    fills = [(i, new[i], False) for i in range(81) if before[i] == 0 and new[i] != 0]
    wrong = task.layout.write(before, fills, after=new)
    return wrong if task.diagnose(state, wrong) == kind else None
