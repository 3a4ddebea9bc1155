"""Training metrics: ``metrics.csv`` (the record the report is built from) and TensorBoard
event files beside it (the live view).

``tensorboard --logdir runs/NAME`` then shows every stage and RL run of a pipeline run
(``pip install tensorboard`` for the viewer; writing needs only tensorboardX, which Ray brings).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from cot_ray.atomic import write_text


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


def rows_up_to(path: Path, step: int) -> list[list[str]]:
    """The whole data rows of an existing metrics CSV with step <= ``step`` (a row cut short by a
    crash has fewer fields than the header and is dropped)."""
    if step == 0 or not path.exists():
        return []
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f)) or [[]]
    return [row for row in rows if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= step]


class MetricsLog:
    """``metrics.csv`` plus TensorBoard events under one folder. On resume the CSV keeps the rows
    up to the resumed step (a killed run may have logged past its last checkpoint): those are
    rewritten atomically, then new rows are appended, each flushed whole."""

    def __init__(self, folder: Path, fields: list[str], start: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "metrics.csv"
        kept = io.StringIO()
        csv.writer(kept).writerows([fields, *rows_up_to(path, start)])
        write_text(path, kept.getvalue())
        self.fields = fields
        self._fh = open(path, "a", newline="")
        self._csv = csv.writer(self._fh)
        self._tracker = Tracker(folder / "tensorboard")

    def log(self, step: int, row: dict[str, Any]) -> None:
        """One CSV row (the ``fields``; floats to 5 significant digits) and every number to TensorBoard."""
        self._csv.writerow([f"{row[k]:.5g}" if isinstance(row.get(k), float) else row.get(k, "")
                            for k in self.fields])
        self._fh.flush()
        self._tracker.log(step, row)

    def close(self) -> None:
        self._fh.close()
        self._tracker.close()
