"""Resumable checkpoints: HF model folders plus the optimizer and step, written atomically.

Layout of a stage folder::

    checkpoints/step-000100/   config.json, model.safetensors, tokenizer files, trainer_state.pt
    final/                     the last model (HF folder), what later stages load

A checkpoint (and ``final/``) is written to a temporary folder, synced and renamed when complete
(:func:`cot_ray.atomic.atomic_path`), so a run killed while saving leaves the previous checkpoint
as the latest one. The trainer state holds only tensors and plain values (step, optimizer state,
a critic's weights) and is read back with ``torch.load(weights_only=True)``: resuming unpickles
no code.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cot_ray.atomic import atomic_path
from cot_ray.checks import model_files

STATE_FILE = "trainer_state.pt"


def model_folder(path: str | Path, what: str = "--init") -> str:
    """``path`` as an absolute folder holding a complete HF model, or a ValueError naming ``what``
    (checked here, before Ray or an engine starts: a corrupt file fails in one line).

    Ray Train runs its workers in their own working directory, where a relative path means
    something else (transformers then reads it as a Hub repo id and fails far from the cause)."""
    folder = Path(path).resolve()
    if not (folder / "config.json").is_file():
        raise ValueError(f"{what}: {str(path)!r} is not a model folder (no config.json; e.g. "
                         "runs/cpu-small/stage3-reflective-sft/final)")
    model_files(folder, what)
    return str(folder)


def latest_checkpoint(stage_dir: str | Path) -> Path | None:
    root = Path(stage_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / STATE_FILE).exists())
    return done[-1] if done else None


def save_final(stage_dir: str | Path, model) -> Path:
    """The stage's result as an HF folder ``final/``, written atomically."""
    from cot_ray.model import save_checkpoint

    final = Path(stage_dir) / "final"
    with atomic_path(final) as tmp:
        save_checkpoint(model, tmp)
    return final


def save_checkpoint_dir(stage_dir: str | Path, step: int, model, optimizer_state: dict, extra: dict,
                        keep: int = 2) -> Path:
    import torch

    from cot_ray.model import save_checkpoint

    root = Path(stage_dir) / "checkpoints"
    final = root / f"step-{step:06d}"
    with atomic_path(final) as tmp:
        save_checkpoint(model, tmp)
        torch.save({"step": step, "optimizer": optimizer_state, **extra}, tmp / STATE_FILE)
    for old in sorted(p for p in root.glob("step-*") if not p.name.endswith(".tmp"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    """The trainer state of a checkpoint folder (``step``, ``optimizer``, any extra entries),
    loaded without unpickling anything but tensors and plain values."""
    import torch

    return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=True)
