"""The worker harness every training loop runs in: stages I-III (supervised) and the RL learner.

A Ray Train worker does the same things around its step function whatever it trains, so they
live here once:

- device placement: the model through ``prepare_model`` (DDP, the worker's device) and every
  batch through :meth:`Harness.to_device`;
- bf16 autocast (``precision``): ``auto`` on GPUs that support it, ``bf16`` on any device (on
  this project's CPUs it sped up stage I but not stage II, and cost accuracy: docs/benchmarks.md), ``fp32`` never;
- resume: the model from the stage's latest checkpoint, else from ``init``, else freshly built,
  and the optimizer state and step from that checkpoint;
- the learning-rate schedule (linear warm-up, cosine decay);
- checkpoints (rank 0, every ``checkpoint_every`` steps) and the final HF folder;
- metrics: ``metrics.csv`` (cut back to the resumed step) and TensorBoard events, rank 0 only.

The loops themselves (:mod:`cot_ray.train.loop`, :mod:`cot_ray.rl.learner`) only say where the
next batch comes from and which step function consumes it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cot_ray.config import TrainerConfig
from cot_ray.tracking import MetricsLog
from cot_ray.train.checkpoints import latest_checkpoint, load_trainer_state, save_checkpoint_dir, save_final
from cot_ray.train.workers import WorkerConfig


def uses_bf16(precision: str, device_type: str, cuda_bf16: bool) -> bool:
    """Whether a step runs under bf16 autocast: ``bf16`` asks for it on any device, ``auto`` takes
    it only on a GPU that supports it (a CPU's gain depends on its instruction set), ``fp32`` never."""
    return precision == "bf16" or (precision == "auto" and device_type == "cuda" and cuda_bf16)


def precision_context(bf16: bool, device_type: str):
    """The context a step runs in: bf16 autocast on ``device_type``, or a no-op."""
    import torch

    return torch.autocast(device_type=device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def lr_at(step: int, trainer: TrainerConfig, total: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at the last step (``total``)."""
    warmup = trainer.warmup_steps
    if step < warmup:
        return trainer.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return trainer.min_lr + 0.5 * (trainer.lr - trainer.min_lr) * (1 + math.cos(math.pi * progress))


class Harness:
    """One Ray Train worker's training life: see the module docstring.

    ``start`` is the step (or RL version) to continue from and ``state`` the extra entries of
    the checkpoint it resumed from ({} on a fresh start), e.g. PPO's critic.
    """

    def __init__(self, cfg: WorkerConfig, build: Callable[[], Any] | None = None) -> None:
        import ray
        import ray.train
        import ray.train.torch
        import torch

        from cot_ray.model import load_model

        self.cfg = cfg
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        torch.set_num_threads(max(1, int(cfg.trainer.cpus_per_worker)))
        self.device = ray.train.torch.get_device()
        self.use_bf16 = uses_bf16(cfg.trainer.precision, self.device.type,
                                  self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.out = Path(cfg.out_dir)
        self._record_placement(ray.get_runtime_context().get_node_id())
        self.latest = latest_checkpoint(self.out)
        source = self.latest or cfg.init
        if source is None and build is None:
            raise ValueError(f"{self.out}: no checkpoint to resume, no init and nothing to build a model from")
        self.model = load_model(source) if source else build()
        self.state: dict[str, Any] = {}
        self.start = 0
        if self.latest is not None:
            self.state = load_trainer_state(self.latest)
            self.start = self.state["step"]

    def _record_placement(self, node: str) -> None:
        """``workers/rank-N.json``: the node and process this rank runs in (rewritten on a restart),
        so a run on a cluster shows where its trainers landed."""
        import json
        import os

        folder = self.out / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank-{self.rank}.json").write_text(json.dumps({"rank": self.rank, "node": node, "pid": os.getpid(),
                                                                   "device": str(self.device)}))

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def prepare(self, module):
        """Put a trainable module on this worker's device (DDP-wrapped across workers)."""
        import ray.train.torch

        return ray.train.torch.prepare_model(module)

    def frozen(self, module):
        """A module that is only evaluated (the RL reference policy): on the device, no grads."""
        return module.eval().requires_grad_(False).to(self.device)

    def resume(self, opt) -> None:
        """Load the optimizer state of the checkpoint this worker resumed from, if any."""
        if "optimizer" in self.state:
            opt.load_state_dict(self.state["optimizer"])
        if self.latest is not None and self.leader:
            print(f"[{self.cfg.stage}] resuming from {self.latest} at step {self.start}", flush=True)

    def set_lr(self, opt, step: int) -> float:
        lr = lr_at(step, self.cfg.trainer, self.cfg.steps)
        for group in opt.param_groups:
            group["lr"] = lr
        return lr

    def to_device(self, tensors: Iterable) -> list:
        """Every tensor of a batch on the model's device."""
        return [t.to(self.device) for t in tensors]

    def autocast(self):
        """bf16 autocast where the device supports it, else a no-op context."""
        return precision_context(self.use_bf16, self.device.type)

    def metrics(self, fields: list[str]) -> MetricsLog | None:
        """Rank 0's metrics log (None on other ranks)."""
        return MetricsLog(self.out, fields, self.start) if self.leader else None

    def checkpoint_due(self, step: int, last: bool = False) -> bool:
        """Whether ``step`` gets a checkpoint: every ``checkpoint_every`` steps, and the ``last``."""
        return step % self.cfg.trainer.checkpoint_every == 0 or last

    def checkpoint(self, step: int, opt, extra: dict[str, Any], last: bool = False) -> None:
        """Rank 0 saves a resumable checkpoint when :meth:`checkpoint_due`."""
        if self.leader and self.checkpoint_due(step, last):
            save_checkpoint_dir(self.out, step, unwrap(self.model), opt.state_dict(), extra,
                                keep=self.cfg.trainer.keep_checkpoints)

    def finish(self) -> None:
        """Rank 0 writes the final HF folder the next stage (and vLLM) reads."""
        if self.leader:
            save_final(self.out, unwrap(self.model))


def unwrap(model):
    """The module inside a DDP wrapper (what checkpoints store)."""
    return model.module if hasattr(model, "module") else model
