"""Training throughput: Ray Train (1 and 2 workers) vs a plain single-process torch loop, bf16
autocast vs fp32 and torch.compile vs eager, for stage I (random windows) or stages II-III
(length-grouped padded examples).

    .venv/bin/python bench/train_throughput.py [--stage pretrain|sft] [--size 1M] [--steps 60] [--batch 32]

Same model, global batch and total thread count everywhere; the plain loop uses the very same
batches (``Batches``) and optimizer step (``supervised_step``) as the Ray Train workers. Steps/s
is measured over the steps after a warm-up, from each run's own step timings (Ray start-up is
excluded, it is reported separately); for stage I it is also given as tokens/s and as achieved
model FLOP/s against what a large fp32 matmul reaches on the same threads. Target: 1 worker
>= 0.9x the plain loop. The Ray Train rows also print their mean loss over the last quarter of
steps: the bf16 row must learn like the fp32 one (same seed, same data), or its speed buys nothing.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from common import stage_examples, task_corpus, worker_config


def plain_loop(examples: list[tuple[list[int], int]], args, threads: int, precision: str = "fp32",
               compiled: bool = False) -> float:
    """Steps/s of the workers' own batches and step function in one process (``compiled``: the
    model under ``torch.compile``, dynamic shapes, its compile time inside the warm-up)."""
    import torch

    from cot_ray.model import build_model
    from cot_ray.train.batches import Batches
    from cot_ray.train.harness import precision_context, uses_bf16
    from cot_ray.train.loop import make_optimizer, supervised_step

    torch.set_num_threads(threads)
    model = build_model(args.size)
    opt = make_optimizer(model, 1e-3, 0.1)
    if compiled:
        model = torch.compile(model, dynamic=True)
    cfg = worker_config(args.stage, args.size, args.batch, args.steps, len(examples), args.block, args.max_len)
    batches = Batches(examples, cfg, rank=0, world=1)
    bf16 = uses_bf16(precision, "cpu", False)
    times = []
    for step in range(args.steps):
        t0 = time.perf_counter()
        x, y, mask = (torch.from_numpy(a) for a in batches(step))
        supervised_step(model, opt, x, y, mask, 1.0, lambda: precision_context(bf16, "cpu"))
        times.append(time.perf_counter() - t0)
    warm = args.steps // 4
    return (args.steps - warm) / sum(times[warm:])


def ray_train(corpus: str, args, workers: int, tmp: str, precision: str = "fp32") -> tuple[float, float, float]:
    """(steps/s, start-up and shut-down seconds, mean loss of the last quarter of steps) of one run."""
    from cot_ray.config import ModelConfig, TrainConfig
    from cot_ray.train.stages import corpus_dataset, run_stage

    out = Path(tmp) / f"ray{workers}-{precision}"
    cfg = TrainConfig(workers=workers, cpus_per_worker=args.threads / workers, steps=args.steps,
                      batch_size=args.batch, block_size=args.block, max_len=args.max_len, checkpoint_every=10**6,
                      report_every=10**6, warmup_steps=5, precision=precision)
    t0 = time.perf_counter()
    run_stage(args.stage, cfg, ModelConfig(size=args.size), corpus_dataset([corpus], args.stage), out,
              progress=False)
    total = time.perf_counter() - t0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    elapsed = [float(r["elapsed_s"]) for r in rows]
    warm = args.steps // 4
    last = [float(r["loss"]) for r in rows[-max(1, args.steps // 4):]]
    return (args.steps - warm) / (elapsed[-1] - elapsed[warm - 1]), total - elapsed[-1], sum(last) / len(last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["pretrain", "sft"], default="pretrain",
                    help="random windows (stage I) or length-grouped padded examples (stages II-III)")
    ap.add_argument("--size", default="1M")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--task", default="mult", help="whose expert CoTs (e.g. sudoku-board: cpu-sudoku's examples)")
    ap.add_argument("--problems", type=int, default=2000, help="corpus size")
    ap.add_argument("--max-len", type=int, default=640, help="SFT examples are cut to this (cpu-sudoku: 256)")
    args = ap.parse_args()

    from cot_ray.raycluster import ensure_ray

    with tempfile.TemporaryDirectory() as tmp:
        corpus = task_corpus(tmp, args.problems, args.task)
        examples = stage_examples(args.stage, corpus)
        runs = {"plain torch loop": (plain_loop(examples, args, args.threads), None, None),
                "plain torch loop, bf16": (plain_loop(examples, args, args.threads, "bf16"), None, None),
                "plain torch loop, compiled": (plain_loop(examples, args, args.threads, compiled=True), None, None)}
        ensure_ray(num_cpus=args.threads)
        runs |= {"Ray Train, 1 worker": ray_train(corpus, args, 1, tmp),
                 "Ray Train, 2 workers": ray_train(corpus, args, 2, tmp),
                 "Ray Train, 2 workers, bf16": ray_train(corpus, args, 2, tmp, "bf16")}
    window = f"{args.block}-token windows" if args.stage == "pretrain" else "SFT examples (state -> step)"
    print(f"stage {args.stage}, {args.task}, model {args.size}, global batch {args.batch} {window}, "
          f"{args.threads} threads in all")
    print(f"{'run':28} {'steps/s':>8} {'tokens/s':>9} {'vs plain':>9} {'overhead s':>11} {'end loss':>9}")
    base = runs["plain torch loop"][0]
    for name, (rate, overhead, loss) in runs.items():
        tokens = f"{rate * args.batch * args.block:9.0f}" if args.stage == "pretrain" else f"{'-':>9}"
        print(f"{name:28} {rate:8.2f} {tokens} {rate / base:8.2f}x {_or_dash(overhead, 11, 1)} {_or_dash(loss, 9, 3)}")
    fp32, bf16 = runs["Ray Train, 2 workers"][0], runs["Ray Train, 2 workers, bf16"][0]
    print(f"bf16 / fp32: plain loop {runs['plain torch loop, bf16'][0] / base:.2f}x, 2 workers {bf16 / fp32:.2f}x; "
          f"compiled / eager, plain loop: {runs['plain torch loop, compiled'][0] / base:.2f}x")
    if args.stage == "pretrain":
        from cot_ray.model import build_model
        from cot_ray.model.tiny import count_parameters, training_flops_per_token

        per_token = training_flops_per_token(args.size, count_parameters(build_model(args.size)), args.block)
        peak = matmul_peak(args.threads)
        for name, (rate, _, _) in runs.items():
            achieved = rate * args.batch * args.block * per_token
            print(f"{name:28} {achieved / 1e9:6.1f} GFLOP/s of model FLOPs, {achieved / peak:.0%} of the "
                  f"{peak / 1e9:.0f} GFLOP/s an fp32 matmul reaches on {args.threads} threads")


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large fp32 matmul on ``threads`` threads: the machine's practical peak."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def _or_dash(x: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:{width}.{digits}f}"


if __name__ == "__main__":
    main()
