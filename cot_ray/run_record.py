"""What made a run folder: the effective config (``config.json``), its hash and the code version
(``run.json``), so a resume cannot silently mix two configs in one folder.

Resuming with the same config goes on. Resuming with another one is refused with a one-line
error that names the fields that differ, unless the user passes ``--allow-config-change``. The
rule then is the simplest honest one: **outputs that are already complete are kept as they are
(they were made under the earlier config), only what is missing is made under the new one**;
``config.json`` becomes the new config and ``run.json`` appends the change (the two hashes and
the fields), so whoever reads the run can see that its outputs span two configs. To redo a stage
under the new config, delete its outputs. A different code version is recorded, not refused:
resuming after a fix is what resume is for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cot_ray import __version__
from cot_ray.atomic import write_json
from cot_ray.config import PipelineConfig
from cot_ray.layout import RunLayout, is_complete

log = logging.getLogger(__name__)


class ConfigChanged(ValueError):
    """The run folder was made with another config (a ValueError: the CLI prints it, exit 2)."""


@dataclass(frozen=True, kw_only=True)
class ConfigChange:
    """One accepted config change of a resumed run."""

    at: str
    previous_sha256: str
    sha256: str
    fields: list[str]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """``run.json``: the hash of the effective config and the code that last ran in the folder."""

    config_sha256: str
    version: str
    git_commit: str | None
    changes: list[ConfigChange] = field(default_factory=list)


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of every field whose value differs (or exists on one side only)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_fields(a, b, f"{name}.")
        elif key not in old or key not in new or a != b:
            out.append(name)
    return out


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, if it is one (else None)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _as_current(config: dict[str, Any]) -> dict[str, Any]:
    """A recorded config as this code reads it (fields added since then take their defaults, so
    they do not count as changes); as recorded if this code no longer accepts it."""
    try:
        return PipelineConfig.model_validate(config).model_dump(mode="json")
    except ValueError:
        return config


def open_run(layout: RunLayout, pipeline_config: PipelineConfig, allow_config_change: bool = False) -> RunRecord:
    """Record the config in the run folder, refusing a changed one unless ``allow_config_change``
    (module docstring); returns the record written."""
    config = pipeline_config.model_dump(mode="json")
    new_hash = config_hash(config)
    previous: dict[str, Any] | None = None
    if is_complete(layout.config_record):
        previous = _as_current(json.loads(layout.config_record.read_text()))
    changes: list[ConfigChange] = []
    if is_complete(layout.run_record):
        changes = [ConfigChange(**c) for c in json.loads(layout.run_record.read_text()).get("changes", [])]
    if previous is not None and previous != config:
        fields = changed_fields(previous, config)
        if not allow_config_change:
            raise ConfigChanged(f"{layout.root} was made with another config ({', '.join(fields)} differ); "
                                "rerun with --allow-config-change to resume it anyway, or use another --out")
        log.warning("config changed (%s): finished outputs are kept, missing ones are made with the new config",
                    ", ".join(fields))
        changes.append(ConfigChange(at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), previous_sha256=config_hash(previous),
                                    sha256=new_hash, fields=fields))
    record = RunRecord(config_sha256=new_hash, version=__version__, git_commit=git_commit(), changes=changes)
    write_json(layout.config_record, config)
    write_json(layout.run_record, asdict(record))
    return record
