"""Rank wait in data-parallel SFT: ranks that draw their batches independently (what the workers
do) against ranks that split one global length-grouped batch (a candidate), on real stage-II
examples.

    .venv/bin/python bench/rank_balance.py [--size 1M] [--steps 60] [--batch 64] [--world 2]

DDP's allreduce makes every step last as long as its slowest rank, so a rank whose batch is
narrower waits. Both schemes are replayed here in one process: for each step, each rank's batch
gets a real forward and backward of the model on one thread (a rank's share of the cores), timed;
the step lasts as long as the slowest rank. The idle share is the ranks' waiting time over their
time in steps, ``sum(max - t_r) / (world * sum(max))``.

- "independent per rank" is ``cot_ray.train.batches``: each rank its own every-``world``-th share
  of the data and its own length-grouped batches of ``batch / world``, seeded by (seed, rank, epoch);
- "one global batch, split": one length-grouped batch of ``batch`` per step, seeded by (seed,
  epoch), rank ``r`` taking rows ``r, r + world, ...``: the ranks' widths match.

The candidate is not the workers' scheme: a cpu-small run trained with it (on another machine than
the runs it was compared with) ended stage II at 46.5 / 19.0 (ID-Easy / ID-Hard) against 95.5 /
78.5, and no A/B on one machine has yet told the machine from the batches (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from common import mult_corpus, stage_examples


def independent_rows(lengths: np.ndarray, batch: int, world: int, steps: int, seed: int) -> list[list[np.ndarray]]:
    """Per step, each rank's rows under the former scheme (its own share, its own batches)."""
    from cot_ray.train.batches import length_grouped_batches

    per_rank = []
    for rank in range(world):
        share = np.arange(len(lengths))[rank::world]
        batches = length_grouped_batches(lengths[share], batch // world, np.random.default_rng([seed, rank, 0]))
        per_rank.append([share[b] for b in batches])
    return [[per_rank[r][k % len(per_rank[r])] for r in range(world)] for k in range(steps)]


def global_rows(lengths: np.ndarray, batch: int, world: int, steps: int, seed: int) -> list[list[np.ndarray]]:
    """Per step, each rank's rows under the candidate (its rows of one global batch)."""
    from cot_ray.train.batches import length_grouped_batches

    batches = length_grouped_batches(lengths, batch, np.random.default_rng([seed, 0]))
    return [[batches[k % len(batches)][r::world] for r in range(world)] for k in range(steps)]


def replay(examples, plan: list[list[np.ndarray]], size: str, warmup: int = 5) -> dict[str, float]:
    """Time each rank's forward+backward at every step; the idle share, step time and padding."""
    import torch

    from cot_ray.model import build_model
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.train.batches import pad_examples
    from cot_ray.train.loop import supervised_loss

    torch.set_num_threads(1)
    model, pad = build_model(size), Tokenizer().pad_id
    steps, waits, pads, cells = [], [], 0, 0
    for k, ranks in enumerate(plan):
        times = []
        for rows in ranks:
            x, y, mask = (torch.from_numpy(a) for a in pad_examples([examples[i] for i in rows], pad, 640))
            t0 = time.perf_counter()
            supervised_loss(model, x, y, mask).backward()
            times.append(time.perf_counter() - t0)
            pads += int((y == pad).sum())
            cells += y.numel()
        if k >= warmup:
            steps.append(max(times))
            waits.append(sum(max(times) - t for t in times))
    return {"idle": sum(waits) / (len(plan[0]) * sum(steps)), "step_s": float(np.mean(steps)), "padding": pads / cells}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1M")
    ap.add_argument("--steps", type=int, default=60, help="steps replayed per scheme (the first 5 warm up)")
    ap.add_argument("--batch", type=int, default=64, help="global batch (cpu-small's stage II: 64)")
    ap.add_argument("--world", type=int, default=2, help="data-parallel ranks")
    ap.add_argument("--problems", type=int, default=2000, help="corpus size (mult)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        examples = sorted(stage_examples("sft", mult_corpus(tmp, args.problems)))
    lengths = np.array([len(ids) for ids, _ in examples])
    runs = {"independent per rank": replay(examples, independent_rows(lengths, args.batch, args.world, args.steps, 0),
                                           args.size),
            "one global batch, split": replay(examples, global_rows(lengths, args.batch, args.world, args.steps, 0),
                                              args.size)}
    print(f"stage-II examples of {args.problems} mult problems, model {args.size}, global batch {args.batch}, "
          f"{args.world} ranks of 1 thread, {args.steps} steps (5 warm-up)")
    print(f"{'batches':26} {'rank idle':>9} {'step s':>8} {'padding':>8}")
    for name, r in runs.items():
        print(f"{name:26} {r['idle']:9.1%} {r['step_s']:8.3f} {r['padding']:8.1%}")
    before, after = runs["independent per rank"], runs["one global batch, split"]
    print(f"step time, global / independent: {after['step_s'] / before['step_s']:.2f}x; "
          f"idle {before['idle']:.1%} -> {after['idle']:.1%}")


if __name__ == "__main__":
    main()
