"""Driver side of stages I-III: build the Ray Data dataset, launch a Ray Train ``TorchTrainer``.

``run_stage`` is the one entry point; the stages differ only in the dataset they pass and in
where the model starts (fresh for stage I, the previous stage's ``final/`` afterwards).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from cot_ray.config import ModelConfig, ReflectiveConfig, TrainConfig
from cot_ray.layout import TrainedStage
from cot_ray.train.checkpoints import latest_checkpoint, model_folder
from cot_ray.train.workers import StageWorkerConfig, torch_trainer

log = logging.getLogger(__name__)

STAGES = ("pretrain", "sft", "reflective-sft", "control")


def corpus_dataset(paths: list[str], stage: TrainedStage, verification: str | None = None, fraction: float = 1.0):
    """The Ray Data dataset of training examples for ``stage`` from corpus Parquet files
    (``fraction``: the share of planning examples kept, :func:`cot_ray.train.data.kept`)."""
    import ray.data

    from cot_ray.train.data import documents_batch, sft_batch

    ds = ray.data.read_parquet(paths, columns=["trace"])
    if stage == "pretrain":
        return ds.map_batches(documents_batch, batch_format="pyarrow")
    return ds.map_batches(sft_batch, batch_format="pyarrow",
                          fn_kwargs={"with_verification": verification, "fraction": fraction})


def run_stage(stage: TrainedStage, cfg: TrainConfig, model: ModelConfig, dataset, out_dir: str | Path,
              init: str | None = None, progress: bool = True) -> Path:
    """Train one stage on Ray Train; resumes from the stage's latest checkpoint; returns final/."""
    import ray.train

    from cot_ray.raycluster import ensure_ray

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    out_dir = Path(out_dir).resolve()
    init = model_folder(init) if init is not None else None
    ensure_ray()
    t0 = time.perf_counter()
    dataset = materialize(dataset, stage)  # tokenise once, before the workers claim the CPUs
    n = dataset.count()
    steps = cfg.steps or math.ceil((cfg.epochs or 1.0) * n / cfg.batch_size)
    if stage == "pretrain" and cfg.steps is None:
        raise ValueError("pretrain.steps: pretraining runs for a number of steps; set it")
    worker = StageWorkerConfig(
        stage=stage, out_dir=str(out_dir), init=init, steps=steps, model=model, progress=progress,
        trainer=TrainConfig.model_validate(cfg.model_dump(include=set(TrainConfig.model_fields))),
        steps_per_epoch=max(1, math.ceil(n / cfg.batch_size)),
        **({"verification_weight": cfg.verification_weight, "reject_label_weight": cfg.reject_label_weight}
           if isinstance(cfg, ReflectiveConfig) else {}))
    resume = latest_checkpoint(out_dir)
    log.info("%s: %d examples, %d steps on %d worker(s)%s", stage, n, steps, cfg.workers,
             f", resuming from {resume.name}" if resume else "")
    from cot_ray.train.loop import train_loop_per_worker

    trainer = torch_trainer(train_loop_per_worker, worker, datasets={"train": dataset},
                            dataset_config=ray.train.DataConfig(datasets_to_split=[]))  # whole data per worker: loop.py
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"{stage} failed: {result.error}")
    log.info("%s: done in %.0fs; last step %s", stage, time.perf_counter() - t0, _last_row(out_dir / "metrics.csv"))
    return out_dir / "final"


def materialize(dataset, stage: str, attempts: int = 3):
    """``dataset.materialize()``, executed again if a node is lost meanwhile: Ray Data's own
    helper actors (e.g. the Parquet footer readers) die with their node and are not restarted,
    so the plan is rerun; after ``attempts`` failures the stage stops with the last error."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            return dataset.materialize()
        except ray.exceptions.RayError as err:
            if attempt == attempts:
                raise RuntimeError(f"{stage}: building its dataset failed {attempts} times; last: {err}") from err
            log.warning("%s: building its dataset failed (%s); again (%d of %d)", stage,
                        str(err).splitlines()[0], attempt + 1, attempts)


def planning_labels(cfg: ReflectiveConfig) -> str | None:
    """The labels the re-mixed planning examples of stage III carry: "binary", "detailed", or
    None (plain state -> step examples) when ``cfg.planning_labels`` is off."""
    if not cfg.planning_labels:
        return None
    return "detailed" if cfg.verification in ("detailed", "optional") else "binary"


@dataclass(frozen=True, kw_only=True)
class Mixture:
    """Stage III's mixture: how many planning and verification examples it holds, and the share
    of the planning examples kept to get there (``verification_share``)."""

    planning: int
    verification: int
    planning_fraction: float

    @classmethod
    def of(cls, n_planning: int, n_records: int, cfg: ReflectiveConfig) -> Mixture:
        n_verify = n_records * cfg.verification_repeats
        fraction = 1.0
        if cfg.verification_share is not None and n_planning:
            fraction = min(1.0, n_verify * (1 - cfg.verification_share) / (cfg.verification_share * n_planning))
        return cls(planning=round(n_planning * fraction), verification=n_verify, planning_fraction=fraction)

    @property
    def planning_share(self) -> float:
        return self.planning / max(1, self.planning + self.verification)


def reflective_dataset(corpus_paths: list[str], verification_parquet: list[str], cfg: ReflectiveConfig):
    """Stage III mixture: expert planning examples (with positive labels unless
    ``cfg.planning_labels`` is off; subsampled to ``cfg.verification_share``) + the sampled
    verifications, each ``cfg.verification_repeats`` times."""
    import ray.data

    from cot_ray.train.data import verification_examples

    mixture = mixture_of(corpus_paths, verification_parquet, cfg)
    log.info("reflective-sft mixture: %d planning examples (%.0f%% kept), %d verification examples",
             mixture.planning, 100 * mixture.planning_fraction, mixture.verification)
    planning = corpus_dataset(corpus_paths, "sft", verification=planning_labels(cfg),
                              fraction=mixture.planning_fraction)
    records = ray.data.read_parquet(verification_parquet).map_batches(
        lambda b: verification_examples(b.to_pylist(), cfg.verification_repeats), batch_format="pyarrow")
    return planning.union(records)


def mixture_of(corpus_paths: list[str], verification_parquet: list[str], cfg: ReflectiveConfig) -> Mixture:
    """Stage III's :class:`Mixture` from the sizes of its files (Parquet metadata: nothing is read)."""
    import pyarrow.parquet as pq

    n_plan = sum(int(pq.read_table(p, columns=["n_steps"]).column("n_steps").to_numpy().sum()) for p in corpus_paths)
    n_records = sum(pq.read_metadata(p).num_rows for p in verification_parquet)
    return Mixture.of(n_plan, n_records, cfg)


def _last_row(path: Path) -> dict[str, str] | None:
    """The final row of a stage's metrics.csv (Ray Train keeps no metrics without a checkpoint)."""
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None
