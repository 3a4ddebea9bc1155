"""Atomic outputs: a file or folder appears under its final name complete, or not at all.

Every output of a run is written to a hidden temporary name in the folder it belongs to, flushed
to disk, then renamed onto its final name (a rename within one folder is atomic on POSIX), and
the folder itself is synced so the rename survives a power loss. A crash mid-write leaves only
a hidden ``.<name>.tmp`` behind (removed by the next write of that output), which no reader or
resume check looks at, never a truncated file under the real name. Each output has one writer
at a time (the pipeline's driver, a trainer's rank 0). The resume rule that relies on this:
:func:`cot_ray.layout.is_complete`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(folder: Path) -> None:
    for sub, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(sub) / name)
        _fsync(Path(sub))


def _temporary_name(path: Path) -> Path:
    """The hidden name ``path`` is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to (a file, or a folder the caller
    creates); on success it is synced and renamed onto ``path`` (replacing what was there), on
    an exception it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir():
            _sync_tree(tmp)
            _remove(path)  # a folder cannot be renamed onto a non-empty one
        else:
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_with(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` writes the whole output to ``tmp``; it then becomes ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """One JSON object per line."""
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def write_parquet(path: str | Path, table) -> Path:
    """A pyarrow table as one Parquet file."""
    import pyarrow.parquet as pq

    return write_with(path, lambda tmp: pq.write_table(table, tmp))
