"""Checks of a command's inputs and outputs that run before any work, so that a bad file fails in
one line naming it, not in a traceback from Ray Data, vLLM or a training worker (sometimes after
the work is done, when the result cannot be written).

Every check raises :class:`InputError` (a ``ValueError``: the CLI prints it as one line and exits
with status 2). None of them reads more than a file's header, and none starts Ray.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

CORPUS_COLUMNS = ("trace", "n_steps")
"""What stages I-III read from a corpus Parquet (``data/corpus-<task>.parquet``)."""
REFLECTIVE_COLUMNS = ("state", "step", "verification")
"""What stage III reads from its sampled data (``data/reflective-<task>.parquet``)."""


class InputError(ValueError):
    """A file or path a command cannot use; the message names it."""


def writable(out: str | Path, what: str = "--out", folder: bool = False) -> None:
    """``out`` can be written (a file, or a ``folder`` that may not exist yet): its nearest existing
    ancestor is a writable folder, and an existing ``out`` is of the right kind. Creates nothing."""
    path = Path(out).absolute()
    if path.exists():
        if folder != path.is_dir():
            raise InputError(f"{what}: {str(out)!r} is {'a file' if folder else 'a folder'}, not "
                             f"{'a folder' if folder else 'a file'}")
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            raise InputError(f"{what}: {str(out)!r} is not writable")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what}: cannot create {str(out)!r}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot create {str(out)!r}: {parent} is not writable")


def model_files(folder: str | Path, what: str) -> None:
    """An HF model folder whose ``config.json`` is a JSON mapping and whose ``model.safetensors``
    is complete (its header parses and the file is as long as the tensors it lists)."""
    folder, prefix = Path(folder), f"{what}: " if what else ""
    config = json_file(folder / "config.json", what)
    if not isinstance(config, dict):
        raise InputError(f"{prefix}{folder / 'config.json'}: not a JSON object")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise InputError(f"{prefix}{weights}: missing (a run stopped while saving?)")
    size = weights.stat().st_size
    try:
        with open(weights, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n)) if 0 < n <= size - 8 else None
    except (OSError, struct.error, ValueError):
        header = None
    if not isinstance(header, dict):
        raise InputError(f"{prefix}{weights}: not a safetensors file (corrupt or truncated header)")
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise InputError(f"{prefix}{weights}: truncated ({size} bytes of {8 + n + end})")


def json_file(path: str | Path, what: str = "") -> object:
    """The JSON value in ``path``, or an InputError naming the file."""
    prefix = f"{what}: " if what else ""
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise InputError(f"{prefix}{path}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise InputError(f"{prefix}{path}: not valid JSON ({err})") from None


def parquet_columns(path: str | Path, columns: Iterable[str]) -> None:
    """``path`` is a readable Parquet file with every one of ``columns``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(names)})")


def run_folder(paths: Iterable[Path]) -> None:
    """The outputs among ``paths`` that a stage trusts and skips its work for (complete ones:
    :func:`cot_ray.layout.is_complete`; incomplete ones are redone) are usable, so a bad one is
    named now, not after hours: Parquet with the columns its reader needs, a model's config.json."""
    from cot_ray.layout import is_complete

    for path in paths:
        if not is_complete(path):
            continue
        try:
            if path.name.startswith("corpus-") and path.suffix == ".parquet":
                parquet_columns(path, CORPUS_COLUMNS)
            elif path.name.startswith("reflective-") and path.suffix == ".parquet":
                parquet_columns(path, REFLECTIVE_COLUMNS)
            elif path.is_dir():
                model_files(path, "")
        except InputError as err:
            raise InputError(f"{err}; delete {path} to redo the stage that writes it") from None
