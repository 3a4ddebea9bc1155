"""Stage-I training throughput: Ray Train (1 and 2 workers) vs a plain single-process torch loop,
and bf16 autocast vs fp32 on the same 2 workers.

    .venv/bin/python bench/train_throughput.py [--size 1M] [--steps 60] [--batch 32] [--block 256]

Same model, global batch, window length and total thread count everywhere; the plain loop uses
the very same batch function and optimizer step as the Ray Train workers. Tokens/s is measured
over the steps after a warm-up, from each run's own step timings (Ray start-up is excluded,
it is reported separately). Target: 1 worker >= 0.9x the plain loop. The Ray Train rows also
print their mean loss over the last quarter of steps: the bf16 row must learn like the fp32 one (same seed, same data),
or its speed buys nothing.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np


def plain_loop(stream: np.ndarray, args, threads: int) -> float:
    import torch

    from cot_ray.model import build_model
    from cot_ray.train.batches import random_windows

    torch.set_num_threads(threads)
    model = build_model(args.size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    times = []
    for step in range(args.steps):
        t0 = time.perf_counter()
        x, y, mask = (torch.from_numpy(a) for a in random_windows(stream, args.block, args.batch,
                                                                   np.random.default_rng([0, 0, step])))
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    warm = args.steps // 4
    return args.batch * args.block * (args.steps - warm) / sum(times[warm:])


def ray_train(corpus: str, args, workers: int, tmp: str, precision: str = "fp32") -> tuple[float, float, float]:
    """(tokens/s, start-up and shut-down seconds, mean loss of the last quarter of steps) of one run."""
    from cot_ray.config import ModelConfig, TrainConfig
    from cot_ray.train.stages import corpus_dataset, run_stage

    out = Path(tmp) / f"ray{workers}-{precision}"
    cfg = TrainConfig(workers=workers, cpus_per_worker=args.threads / workers, steps=args.steps,
                      batch_size=args.batch, block_size=args.block, checkpoint_every=10**6, report_every=10**6,
                      warmup_steps=5, precision=precision)
    t0 = time.perf_counter()
    run_stage("pretrain", cfg, ModelConfig(size=args.size), corpus_dataset([corpus], "pretrain"), out,
              progress=False)
    total = time.perf_counter() - t0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    elapsed = [float(r["elapsed_s"]) for r in rows]
    warm = args.steps // 4
    tokens = args.batch * args.block * (args.steps - warm)
    last = [float(r["loss"]) for r in rows[-max(1, args.steps // 4):]]
    return tokens / (elapsed[-1] - elapsed[warm - 1]), total - elapsed[-1], sum(last) / len(last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1M")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from cot_ray.data.corpus import generate_corpus
    from cot_ray.raycluster import ensure_ray
    from cot_ray.tokenizer import Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = f"{tmp}/corpus.parquet"
        table = generate_corpus("mult", 2000, corpus, parallel=False)
        tok = Tokenizer()
        stream = np.concatenate([tok.document(tr[0]["state"], [t["step"] for t in tr])
                                 for tr in table.column("trace").to_pylist()]).astype(np.int64)
        base = plain_loop(stream, args, args.threads)
        ensure_ray(num_cpus=args.threads)
        runs = {"Ray Train, 1 worker": ray_train(corpus, args, 1, tmp),
                "Ray Train, 2 workers": ray_train(corpus, args, 2, tmp),
                "Ray Train, 2 workers, bf16": ray_train(corpus, args, 2, tmp, "bf16")}
    print(f"model {args.size}, global batch {args.batch} x {args.block} tokens, {args.threads} threads in all")
    print(f"{'run':28} {'tokens/s':>10} {'vs plain':>9} {'overhead s':>11} {'end loss':>10}")
    print(f"{'plain torch loop':28} {base:10.0f} {1.0:8.2f}x {'-':>11} {'-':>10}")
    for name, (rate, overhead, loss) in runs.items():
        print(f"{name:28} {rate:10.0f} {rate / base:8.2f}x {overhead:11.1f} {loss:10.3f}")
    fp32, bf16 = runs["Ray Train, 2 workers"][0], runs["Ray Train, 2 workers, bf16"][0]
    print(f"bf16 / fp32 (2 workers): {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
