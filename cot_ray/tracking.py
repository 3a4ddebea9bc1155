"""Training metrics as TensorBoard event files, beside each stage's ``metrics.csv``.

``tensorboard --logdir runs/NAME`` then shows every stage and RL run of a pipeline run
(``pip install tensorboard`` for the viewer; writing needs only tensorboardX, which Ray brings).
The CSV stays the record the report is built from; this is the live view.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class Tracker:
    """Scalars per step into ``<logdir>/`` (one event file per writer, appended on resume)."""

    def __init__(self, logdir: str | Path) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(logdir), flush_secs=10)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Every finite number in ``metrics``; anything else (None, text, NaN) is skipped."""
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()
