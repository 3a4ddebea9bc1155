"""The training loop that runs inside every Ray Train worker (stages I-III).

One loop serves all three stages: stage I draws random context windows from a token stream,
stages II-III draw padded (prompt, target) examples. The batch for a given step depends only on
(seed, worker rank, step), so a resumed run sees exactly the data the killed run would have.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from cot_ray.tracking import Tracker
from cot_ray.train.checkpoints import STATE_FILE, latest_checkpoint, save_checkpoint_dir, save_final
from cot_ray.train.data import length_grouped_batches, pad_examples, random_windows

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: dict[str, Any]) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at the last step."""
    warmup, total = cfg["warmup_steps"], cfg["steps"]
    if step < warmup:
        return cfg["lr"] * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * progress))


class Batches:
    """Deterministic batches for one worker: windows (stage I) or shuffled examples (II-III)."""

    def __init__(self, examples: list[tuple[list[int], int]], cfg: dict[str, Any], rank: int, world: int):
        from cot_ray.tokenizer import Tokenizer

        if not examples:
            raise ValueError("this worker received no training examples; use fewer workers or more data")
        self.cfg, self.rank = cfg, rank
        self.batch = max(1, cfg["batch_size"] // world)
        self.pad = Tokenizer().pad_id
        self.windows = cfg["stage"] == "pretrain"
        if self.windows:
            self.stream = np.concatenate([np.asarray(ids, dtype=np.int64) for ids, _ in examples])
        else:
            self.examples = examples
            self.lengths = np.array([len(ids) for ids, _ in examples])
            self._epoch, self._batches = -1, []
        self.tokens = sum(len(ids) for ids, _ in examples)

    def __call__(self, step: int) -> tuple[np.ndarray, ...]:
        seed = self.cfg["seed"]
        if self.windows:
            rng = np.random.default_rng([seed, self.rank, step])
            return random_windows(self.stream, self.cfg["block_size"], self.batch, rng)
        epoch, k = divmod(step, self.cfg["steps_per_epoch"])
        if self._epoch != epoch:
            rng = np.random.default_rng([seed, self.rank, epoch])
            self._epoch, self._batches = epoch, length_grouped_batches(self.lengths, self.batch, rng)
        picked = [self.examples[i] for i in self._batches[k % len(self._batches)]]
        return pad_examples(picked, self.pad, self.cfg["max_len"])


def _load_examples(shard) -> list[tuple[list[int], int]]:
    examples = []
    for batch in shard.iter_batches(batch_size=1024, batch_format="pyarrow"):
        examples.extend(zip(batch.column("ids").to_pylist(), batch.column("start").to_pylist()))
    return examples


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from cot_ray.model import build_model, load_model

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(cfg["threads"])))
    device = ray.train.torch.get_device()
    stage_dir = Path(cfg["out_dir"])
    batches = Batches(_load_examples(ray.train.get_dataset_shard("train")), cfg, rank, world)

    latest = latest_checkpoint(stage_dir)
    source = latest or cfg.get("init")
    model = load_model(source) if source else build_model(cfg["model_size"], seed=cfg["seed"],
                                                          max_positions=cfg["max_positions"])
    model = ray.train.torch.prepare_model(model)
    opt = make_optimizer(model, cfg["lr"], cfg["weight_decay"])
    start = 0
    if latest is not None:
        state = torch.load(latest / STATE_FILE, map_location="cpu", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        start = state["step"]
        if rank == 0:
            print(f"[{cfg['stage']}] resuming from {latest} at step {start}", flush=True)
    use_bf16 = device.type == "cuda" and cfg["precision"] in ("auto", "bf16") and torch.cuda.is_bf16_supported()
    unwrapped = model.module if hasattr(model, "module") else model

    log_file = stage_dir / "metrics.csv"
    writer = None
    if rank == 0:
        stage_dir.mkdir(parents=True, exist_ok=True)
        kept = rows_up_to(log_file, start)  # a killed run may have logged past its last checkpoint
        fh = open(log_file, "w", newline="")
        writer = csv.writer(fh)
        writer.writerow(["step", "loss", "lr", "tokens_per_s", "elapsed_s"])
        writer.writerows(kept)
        tracker = Tracker(stage_dir / "tensorboard")
    bar = _progress(cfg, start) if rank == 0 else None
    t_start = time.perf_counter()
    for step in range(start, cfg["steps"]):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y, mask = (torch.from_numpy(a).to(device) for a in batches(step))
        loss = supervised_step(model, opt, x, y, mask, cfg["grad_clip"], use_bf16)
        done = step + 1
        metrics = {"step": done, "loss": loss, "lr": lr,
                   "tokens_per_s": float(mask.sum()) * world / (time.perf_counter() - t0)}
        if rank == 0:
            writer.writerow([done, f"{metrics['loss']:.5f}", f"{lr:.3g}", f"{metrics['tokens_per_s']:.0f}",
                             f"{time.perf_counter() - t_start:.1f}"])
            fh.flush()
            tracker.log(done, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            if done % cfg["checkpoint_every"] == 0 or done == cfg["steps"]:
                save_checkpoint_dir(stage_dir, done, unwrapped, opt.state_dict(), {"loss": metrics["loss"]},
                                    keep=cfg["keep_checkpoints"])
        if done % cfg["report_every"] == 0 or done == cfg["steps"]:
            ray.train.report(metrics)  # a synchronising call (about a second): not every step
    if rank == 0:
        fh.close()
        tracker.close()
        if bar is not None:
            bar.close()
        save_final(stage_dir, unwrapped)


def supervised_step(model, opt, x, y, mask, grad_clip: float, use_bf16: bool = False) -> float:
    """One optimiser step on the masked next-token loss (the loss of stages I-III); returns it.

    ``mask`` is 1 on the target tokens: every token of a pretraining window, the step (and
    verification) tokens of an SFT example.
    """
    import torch

    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        logits = model(input_ids=x).logits
    nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
    loss = (nll * mask.flatten()).sum() / mask.sum().clamp(min=1.0)
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


def rows_up_to(path: Path, step: int) -> list[list[str]]:
    """The data rows of an existing metrics CSV with step <= ``step``."""
    if step == 0 or not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in list(csv.reader(f))[1:] if row and int(row[0]) <= step]


def _progress(cfg: dict[str, Any], start: int):
    if not cfg.get("progress", True):
        return None
    from tqdm import tqdm

    return tqdm(total=cfg["steps"], initial=start, desc=cfg["stage"], unit="step", mininterval=2.0)
