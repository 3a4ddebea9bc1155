"""The training loop that runs inside every Ray Train worker (stages I-III).

One loop serves all three stages: stage I draws random context windows from a token stream,
stages II-III draw padded (prompt, target) examples. Every worker reads the whole dataset and
:class:`~cot_ray.train.batches.Batches` cuts its batches from it, so the batch for a given step
depends only on (data, seed, worker rank, step): a resumed run, or a worker group restarted after
a failure, sees exactly the data the lost one would have.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from cot_ray.train.batches import Batches
from cot_ray.train.harness import Harness
from cot_ray.train.workers import StageWorkerConfig

log = logging.getLogger(__name__)


def _load_examples(shard) -> list[tuple[list[int], int]]:
    from cot_ray.train.data import examples_of  # Arrow: not needed by the step functions (GPU check)

    return [e for batch in shard.iter_batches(batch_size=1024, batch_format="pyarrow") for e in examples_of(batch)]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Stages I-III inside one Ray Train worker: the harness around :func:`supervised_step`."""
    import ray.train
    import torch

    from cot_ray.model import build_model

    cfg = StageWorkerConfig.of(loop_config)
    train = cfg.trainer
    h = Harness(cfg, build=lambda: build_model(cfg.model.size, seed=train.seed,
                                               max_positions=cfg.model.max_positions))
    batches = Batches(_load_examples(ray.train.get_dataset_shard("train")), cfg, h.rank, h.world)
    model = h.model = h.prepare(h.model)
    opt = make_optimizer(model, train.lr, train.weight_decay)
    h.resume(opt)
    metrics_log = h.metrics(["step", "loss", "lr", "tokens_per_s", "elapsed_s"])
    bar = _progress(cfg, h.start) if h.leader else None
    t_start = time.perf_counter()
    for step in range(h.start, cfg.steps):
        t0 = time.perf_counter()
        lr = h.set_lr(opt, step)
        x, y, mask = h.to_device(torch.from_numpy(a) for a in batches(step))
        loss = supervised_step(model, opt, x, y, mask, train.grad_clip, h.autocast)
        done = step + 1
        metrics = {"step": done, "loss": loss, "lr": lr,
                   "tokens_per_s": float((mask > 0).sum()) * h.world / (time.perf_counter() - t0),
                   "elapsed_s": time.perf_counter() - t_start}
        if metrics_log is not None:
            metrics_log.log(done, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        h.checkpoint(done, opt, {"loss": loss}, last=done == cfg.steps)
        if done % train.report_every == 0 or done == cfg.steps:
            ray.train.report(metrics)  # a synchronising call (about a second): not every step
    if metrics_log is not None:
        metrics_log.close()
    if bar is not None:
        bar.close()
    h.finish()


def supervised_loss(model, x, y, mask, autocast=contextlib.nullcontext):
    """The masked next-token loss of stages I-III (a tensor on the model's device).

    ``mask`` is 1 on the target tokens: every token of a pretraining window, the step (and
    verification) tokens of an SFT example.
    """
    import torch

    with autocast():
        logits = model(input_ids=x).logits
    nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
    return (nll * mask.flatten()).sum() / mask.sum().clamp(min=1.0)


def supervised_step(model, opt, x, y, mask, grad_clip: float, autocast=contextlib.nullcontext) -> float:
    """One optimiser step on :func:`supervised_loss`; returns the loss. ``autocast`` is the
    harness's precision context (bf16 on GPUs that support it)."""
    import torch

    loss = supervised_loss(model, x, y, mask, autocast)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return float(loss.detach())


def make_optimizer(model, lr: float, weight_decay: float):
    """AdamW with decay on matrices only (embeddings and projections), not on norms."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))


def _progress(cfg: StageWorkerConfig, start: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=cfg.stage, unit="step", mininterval=2.0)
