"""Where a run's time goes: wall seconds per stage and phase, kept in the run's ``profile.json``.

A phase is what the run was doing, timed where it happens (``with phase("training"): ...``):

- ``data``: generating the corpora;
- ``engine start``: a rollout pool's vLLM engines starting and loading their weights;
- ``training``: a Ray Train stage (I-III, the control), Ray start-up and checkpoints included;
- ``sampling``: stage III's data, sampled by the policy and labelled by the expert;
- ``evaluation``: held-out rollouts (the expert baselines' too), their scoring and the verifier's
  diagnostics;
- ``RL``: a stage-IV run (rollout, scoring, learning, weight sync; its own split per update is in
  its ``metrics.csv``).

Phases nest (an RL run evaluates its policy at the end): each second is counted once, in the
innermost phase. What a stage spends outside every phase is its ``other``. A stage run again after
an interruption adds its seconds to what the first attempt spent, so the profile is the time the
run really cost.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

PHASES = ("data", "engine start", "training", "sampling", "evaluation", "RL")
OTHER = "other"


@dataclass
class Profile:
    """Seconds per stage (in run order) and phase; ``wall`` is each stage's whole time."""

    path: Path
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Profile:
        """The run's profile so far (empty for a new run, or one whose file does not parse)."""
        try:
            seconds = json.loads(path.read_text())
        except (OSError, ValueError):
            seconds = {}
        return cls(path, seconds if isinstance(seconds, dict) else {})

    def add(self, stage: str, phase: str, seconds: float) -> None:
        row = self.seconds.setdefault(stage, {})
        row[phase] = row.get(phase, 0.0) + seconds

    def save(self) -> None:
        from cot_ray.atomic import write_json

        write_json(self.path, self.seconds)

    def rows(self) -> list[tuple[str, dict[str, float]]]:
        """(stage, phase -> seconds) with ``other`` filled in, then the run's total."""
        rows = []
        for stage, row in self.seconds.items():
            phases = {p: row.get(p, 0.0) for p in PHASES}
            phases[OTHER] = max(0.0, row.get("wall", 0.0) - sum(phases.values()))
            rows.append((stage, {"wall": row.get("wall", 0.0), **phases}))
        total = {k: sum(r[k] for _, r in rows) for k in ("wall", *PHASES, OTHER)}
        return rows + [("all stages", total)] if rows else []

    def markdown(self) -> list[str]:
        """The report's section: minutes per stage and phase (none for a run without a profile)."""
        rows = self.rows()
        if not rows:
            return []
        columns = ("wall", *PHASES, OTHER)
        lines = ["## Where the time went", "",
                 "Minutes per stage and phase (`profile.json`; an interrupted stage's attempts add up):", "",
                 "| stage | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for stage, row in rows:
            lines.append(f"| {stage} | " + " | ".join(f"{row[c] / 60:.1f}" if row[c] else "-" for c in columns) + " |")
        return lines + [""]


@dataclass
class _Open:
    profile: Profile
    stage: str
    phases: list[list] = field(default_factory=list)  # [name, started] innermost last


_open: ContextVar[_Open | None] = ContextVar("cot_ray_profile", default=None)


@contextlib.contextmanager
def stage(profile: Profile, name: str) -> Iterator[None]:
    """Time stage ``name``; phases opened inside it are counted to it. Saved when it ends."""
    token = _open.set(_Open(profile, name))
    t0 = time.perf_counter()
    try:
        yield
    finally:
        profile.add(name, "wall", time.perf_counter() - t0)
        profile.save()
        _open.reset(token)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time inside to phase ``name`` of the open stage (nothing outside a stage)."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")
    current = _open.get()
    if current is None:
        yield
        return
    now = time.perf_counter()
    if current.phases:  # the outer phase pauses while this one runs
        outer = current.phases[-1]
        current.profile.add(current.stage, outer[0], now - outer[1])
    current.phases.append([name, now])
    try:
        yield
    finally:
        now = time.perf_counter()
        _, started = current.phases.pop()
        current.profile.add(current.stage, name, now - started)
        if current.phases:
            current.phases[-1][1] = now
