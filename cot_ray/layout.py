"""The run folder: every path a run writes, in one place, and the rule that says an output is done.

    config.json, run.json             the effective config; its hash, the code version, config changes
    data/corpus-<task>.parquet        stage-I/II data (expert CoTs)
    stage1-pretrain/final             HF checkpoints (also checkpoints/step-N while training)
    stage2-sft/final
    data/reflective-<task>.parquet    stage-III data: sampled steps + expert verifications
    stage3-reflective-sft/final
    stage3-control/final              planning only, as many planning examples as stage III (a control)
    stage4-rl-mtp/final, stage4-rl-rmtp/final   RL-tuned policies (GRPO or PPO)
    <stage>/metrics.csv, <stage>/tensorboard/   per-step metrics of every training stage and RL run
    eval/<name>.json                  summaries of one checkpoint's evaluation (or the expert baselines)
    eval/<policy>-<task>-<difficulty>-<mode>.jsonl   one line per problem
    report.md, accuracy.png, heatmap.png, rl.png     the report
    pipeline.log                      everything the run logged
    profile.json                      seconds per stage and phase (:mod:`cot_ray.profile`)

**The resume rule** (:func:`is_complete`): an output counts as done only if it is complete.
Every output is written atomically (:mod:`cot_ray.atomic`), so a crash never leaves a partial
file under a real name; what is cheap to check is checked anyway (a file left by older code or
damaged later): a Parquet file's footer must read, JSON must parse, a model folder's
``model.safetensors`` must carry its whole header, nothing may be empty.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cot_ray.mtp.execute import Mode

StageName = Literal["pretrain", "sft", "reflective-sft", "control", "rl-mtp", "rl-rmtp"]
"""Every stage of a run, by the name configs, commands and code use for it."""
TrainedStage = Literal["pretrain", "sft", "reflective-sft", "control"]
"""The stages Ray Train runs as supervised training (stage IV's learner is the RL worker group)."""
STAGES: dict[StageName, str] = {
    "pretrain": "stage1-pretrain", "sft": "stage2-sft", "reflective-sft": "stage3-reflective-sft",
    "control": "stage3-control", "rl-mtp": "stage4-rl-mtp", "rl-rmtp": "stage4-rl-rmtp"}
"""Stage -> its folder in the run; the folder name is also the policy name of its evaluations."""
TRAINED: tuple[TrainedStage, ...] = ("pretrain", "sft", "reflective-sft")
"""Stages I-III in order: each starts from the previous one's ``final``."""


@dataclass(frozen=True, kw_only=True)
class RLRun:
    """One stage-IV run: its stage (folder), the stage it starts from, how it executes, and the
    modes it is evaluated in (None: every mode of the config)."""

    stage: StageName
    init: StageName
    mode: Mode
    eval_modes: tuple[str, ...] | None

    @property
    def name(self) -> str:
        return STAGES[self.stage]


RL_RUNS = (
    RLRun(stage="rl-mtp", init="sft", mode="mtp", eval_modes=("mtp",)),  # the MTP policy through the MTP
    RLRun(stage="rl-rmtp", init="reflective-sft", mode="rmtp", eval_modes=None),  # self-verifying, every mode
)
EVALS = ("experts", STAGES["sft"], STAGES["reflective-sft"], STAGES["control"], *(r.name for r in RL_RUNS))
"""The evaluations the report reads, in its order (``eval/<name>.json``)."""


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` is a complete output (the resume rule, module docstring): a model folder
    (``final``, a checkpoint) by its weights, Parquet by its footer, JSON and JSONL by parsing,
    anything else by being a non-empty file."""
    path = Path(path)
    if path.is_dir():
        return _complete_safetensors(path / "model.safetensors")
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.read_metadata(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            text = path.read_text()
            if not text.endswith("\n"):
                return False
            for line in text.splitlines():
                json.loads(line)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False
    return True


def _complete_safetensors(path: Path) -> bool:
    """A safetensors file whose header parses and whose size covers every tensor it lists."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size >= 8 + n + end
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return False


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (``root``); see the module docstring."""

    root: Path

    def corpus(self, task: str) -> Path:
        return self.root / "data" / f"corpus-{task}.parquet"

    def reflective_data(self, task: str) -> Path:
        return self.root / "data" / f"reflective-{task}.parquet"

    def stage(self, stage: StageName) -> Path:
        """The folder of a stage of :data:`STAGES`."""
        return self.root / STAGES[stage]

    def final(self, stage: StageName) -> Path:
        """The stage's result, the HF folder later stages and vLLM load."""
        return self.stage(stage) / "final"

    def policy_final(self, name: str) -> Path:
        """The final checkpoint of the policy an evaluation is named after (its stage folder)."""
        return self.root / name / "final"

    def checkpoints(self, stage: StageName) -> Path:
        return self.stage(stage) / "checkpoints"

    def metrics(self, stage: StageName) -> Path:
        return self.stage(stage) / "metrics.csv"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def eval_summary(self, name: str) -> Path:
        """``eval/<name>.json``: the summary rows of one evaluation (see :data:`EVALS`)."""
        return self.eval_dir / f"{name}.json"

    def eval_records(self, policy: str, task: str, difficulty: str, mode: str) -> Path:
        """The per-problem records of one policy on one split in one mode."""
        return self.eval_dir / (f"{policy}-{task}-{difficulty}-{mode}".replace("/", "_") + ".jsonl")

    @property
    def config_record(self) -> Path:
        """The effective config, as ``load_config`` reads it back."""
        return self.root / "config.json"

    @property
    def run_record(self) -> Path:
        """The config's hash, the code version and the config changes (:mod:`cot_ray.run_record`)."""
        return self.root / "run.json"

    @property
    def log(self) -> Path:
        return self.root / "pipeline.log"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def profile(self) -> Path:
        return self.root / "profile.json"

    def figure(self, name: str) -> Path:
        """``<name>.png`` beside the report (accuracy, heatmap, rl)."""
        return self.root / f"{name}.png"

    def relative(self, path: Path) -> str:
        """``path`` inside the run folder, as the log and the plan name it."""
        return str(path.relative_to(self.root))

    is_complete = staticmethod(is_complete)
    """The resume rule (module docstring)."""
