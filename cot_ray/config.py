"""Run configuration: pydantic models loaded from YAML.

Unknown or mistyped fields are errors, and every error names the field's full path (for
example ``eval.n: Input should be greater than 0``), so a bad config fails before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cot_ray.tasks import DIFFICULTIES, TASKS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusConfig(_Strict):
    """Stage-I data: expert CoTs per task, in-distribution mix unless ``difficulty`` is set."""

    tasks: list[str] = Field(default_factory=lambda: ["mult", "sudoku"])
    n: int = Field(2000, gt=0, description="examples per task")
    seed: int = 0
    difficulty: str | None = None
    shard_size: int = Field(256, gt=0)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected some of {sorted(TASKS)}")
        return tasks

    @field_validator("difficulty")
    @classmethod
    def _known_difficulty(cls, d: str | None) -> str | None:
        if d is not None and d not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {d!r}; expected one of {list(DIFFICULTIES)}")
        return d


class NoiseConfig(_Strict):
    """A noisy expert: the paper's simplified reasoner, to show when reflection helps."""

    step_error: float = Field(0.15, ge=0, le=1)
    false_positive: float = Field(0.2, ge=0, le=1)
    false_negative: float = Field(0.2, ge=0, le=1)


class EvalConfig(_Strict):
    """Evaluation of the (noisy) expert policies through MTP, RMTP and RTBS."""

    n: int = Field(200, gt=0, description="problems per task and difficulty")
    seed: int = 1
    difficulties: list[Literal["id-easy", "id-hard", "ood-hard"]] = Field(
        default_factory=lambda: list(DIFFICULTIES))
    modes: list[Literal["mtp", "rmtp", "rtbs"]] = Field(default_factory=lambda: ["mtp", "rmtp", "rtbs"])
    noise: list[NoiseConfig] = Field(default_factory=lambda: [NoiseConfig()])


class PipelineConfig(_Strict):
    name: str = "cot-ray"
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the fields."""


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{path}: " + "; ".join(lines)) from None
