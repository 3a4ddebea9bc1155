"""Rank wait in data-parallel SFT: ranks that draw their batches independently (what the workers
do) against ranks that split one global length-grouped batch (a candidate), on real stage-II
examples.

    .venv/bin/python bench/rank_balance.py [--size 1M] [--steps 60] [--batch 64] [--world 2]

DDP's allreduce makes every step last as long as its slowest rank, so a rank whose batch is
narrower waits. Both schemes are replayed here in one process: for each step, each rank's batch
gets a real forward and backward of the model on one thread (a rank's share of the cores), timed;
the step lasts as long as the slowest rank. The idle share is the ranks' waiting time over their
time in steps, ``sum(max - t_r) / (world * sum(max))``.

Both are the workers' own ``cot_ray.train.batches.Batches``, as ``trainer.batching`` sets it:

- "independent per rank" (``per-rank``): each rank its own every-``world``-th share of the data
  and its own length-grouped batches of ``batch / world``, seeded by (seed, rank, epoch);
- "one global batch, split" (``global``): one length-grouped batch of ``batch`` per step, seeded
  by (seed, epoch), rank ``r`` taking rows ``r, r + world, ...``: the ranks' widths match.

What each does to accuracy is measured by ``bench/seed_spread.py --batching per-rank global``
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from common import stage_examples, task_corpus, worker_config

SCHEMES = {"independent per rank": "per-rank", "one global batch, split": "global"}
"""The two values of ``trainer.batching``, as the table names them."""


def plan(examples, batching: str, batch: int, world: int, steps: int) -> list[list[list]]:
    """Per step, each rank's examples as the workers' :class:`~cot_ray.train.batches.Batches` cut them."""
    from cot_ray.train.batches import Batches

    cfg = worker_config("sft", "1M", batch, steps, len(examples))
    cfg = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"batching": batching})})
    ranks = [Batches(examples, cfg, rank, world) for rank in range(world)]
    return [[b.rows(k) for b in ranks] for k in range(steps)]


def replay(steps: list[list[list]], size: str, warmup: int = 5) -> dict[str, float]:
    """Time each rank's forward+backward at every step; the idle share, step time and padding."""
    import torch

    from cot_ray.model import build_model
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.train.batches import pad_examples
    from cot_ray.train.loop import supervised_loss

    torch.set_num_threads(1)
    model, pad = build_model(size), Tokenizer().pad_id
    spans, waits, pads, cells = [], [], 0, 0
    for k, ranks in enumerate(steps):
        times = []
        for rows in ranks:
            x, y, mask = (torch.from_numpy(a) for a in pad_examples(rows, pad, 640))
            t0 = time.perf_counter()
            supervised_loss(model, x, y, mask).backward()
            times.append(time.perf_counter() - t0)
            pads += int((y == pad).sum())
            cells += y.numel()
        if k >= warmup:
            spans.append(max(times))
            waits.append(sum(max(times) - t for t in times))
    return {"idle": sum(waits) / (len(steps[0]) * sum(spans)), "step_s": float(np.mean(spans)), "padding": pads / cells}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1M")
    ap.add_argument("--steps", type=int, default=60, help="steps replayed per scheme (the first 5 warm up)")
    ap.add_argument("--batch", type=int, default=64, help="global batch (cpu-small's stage II: 64)")
    ap.add_argument("--world", type=int, default=2, help="data-parallel ranks")
    ap.add_argument("--problems", type=int, default=2000, help="corpus size (mult)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        examples = stage_examples("sft", task_corpus(tmp, args.problems))
    runs = {name: replay(plan(examples, batching, args.batch, args.world, args.steps), args.size)
            for name, batching in SCHEMES.items()}
    print(f"stage-II examples of {args.problems} mult problems, model {args.size}, global batch {args.batch}, "
          f"{args.world} ranks of 1 thread, {args.steps} steps (5 warm-up)")
    print(f"{'batches':26} {'rank idle':>9} {'step s':>8} {'padding':>8}")
    for name, r in runs.items():
        print(f"{name:26} {r['idle']:9.1%} {r['step_s']:8.3f} {r['padding']:8.1%}")
    before, after = (runs[name] for name in SCHEMES)
    print(f"step time, global / independent: {after['step_s'] / before['step_s']:.2f}x; "
          f"idle {before['idle']:.1%} -> {after['idle']:.1%}")


if __name__ == "__main__":
    main()
