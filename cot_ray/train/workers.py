"""The contract between a Ray Train driver and its workers: the worker config and the trainer.

Ray Train hands each worker a plain ``train_loop_config`` dict. What crosses that boundary is
one typed record, dumped by the driver (:meth:`WorkerConfig.loop_config`) and validated again by
the worker (:meth:`WorkerConfig.of`), so a worker reads checked fields, not strings with
hidden defaults. Stages I-III (:class:`StageWorkerConfig`) and the RL learner
(:class:`LearnerWorkerConfig`) build their ``TorchTrainer`` through :func:`torch_trainer`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cot_ray.config import ModelConfig, RLConfig, TrainConfig, TrainerConfig
from cot_ray.layout import TrainedStage

KEY = "worker"
"""The ``train_loop_config`` entry holding the dumped worker config."""


class WorkerConfig(BaseModel):
    """What every Ray Train worker needs: the stage, its folder, the model it starts from, the
    length of the LR schedule and the shared trainer settings (``trainer``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    out_dir: str
    init: str | None = None
    steps: int = Field(gt=0, description="the LR schedule's length: training steps, or RL updates")
    trainer: TrainerConfig

    def loop_config(self, **handles: Any) -> dict[str, Any]:
        """Ray Train's ``train_loop_config``: this config as plain data, plus live ``handles``
        (Ray queues) that are no configuration."""
        return {KEY: self.model_dump(mode="json"), **handles}

    @classmethod
    def of(cls, loop_config: dict[str, Any]):
        """The worker side of :meth:`loop_config`: the record, validated again."""
        return cls.model_validate(loop_config[KEY])


class StageWorkerConfig(WorkerConfig):
    """A worker of stages I-III."""

    stage: TrainedStage
    trainer: TrainConfig
    model: ModelConfig
    steps_per_epoch: int = Field(gt=0)
    progress: bool = True
    verification_weight: float = Field(1.0, gt=0, description="stage III: loss weight of every label token")
    reject_label_weight: float = Field(1.0, gt=0, description="stage III: extra loss weight of ✗ label tokens")

    def label_weights(self) -> dict[str, float]:
        """The loss weight of each label token, where it is not 1 (stage III)."""
        from cot_ray.tasks.base import NEGATIVE, POSITIVE

        weights = {POSITIVE: self.verification_weight, NEGATIVE: self.verification_weight * self.reject_label_weight}
        return {label: w for label, w in weights.items() if w != 1.0}


class LearnerWorkerConfig(WorkerConfig):
    """A worker of the RL learner (``steps`` = the planned updates)."""

    stage: Literal["rl"] = "rl"
    trainer: RLConfig


def torch_trainer(loop: Callable[[dict[str, Any]], None], worker: WorkerConfig, handles: dict[str, Any] | None = None,
                  **kwargs: Any):
    """The ``TorchTrainer`` of one Ray Train loop: ``worker.trainer``'s worker group (CPUs, GPUs,
    extra resources, gloo or NCCL), its failure budget, results under ``out_dir/ray_results``.
    ``kwargs`` go to the trainer as they are (datasets)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from cot_ray.train.rendezvous import torch_config

    t = worker.trainer
    return TorchTrainer(
        loop, train_loop_config=worker.loop_config(**(handles or {})),
        scaling_config=ScalingConfig(num_workers=t.workers, use_gpu=t.use_gpu,
                                     resources_per_worker={"CPU": t.cpus_per_worker, **t.resources}),
        torch_config=torch_config(t.use_gpu),
        run_config=RunConfig(name=worker.stage, storage_path=str(Path(worker.out_dir) / "ray_results"),
                             failure_config=FailureConfig(max_failures=t.max_failures)),
        **kwargs)
