"""Corpus generation throughput: Ray tasks vs one process, measured in the same run.

    .venv/bin/python bench/corpus_throughput.py [--n 4000] [--task sudoku]

Prints rows/s for each and the ratio parallel / serial (on 2 cores the ceiling is about 2x,
less Ray's start-up and scheduling cost, which the warm-up run keeps out of the timing).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from cot_ray.data.corpus import generate_corpus
from cot_ray.raycluster import ensure_ray


def timed(**kwargs) -> float:
    t0 = time.perf_counter()
    generate_corpus(**kwargs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--tasks", nargs="+", default=["mult", "sudoku"])
    ap.add_argument("--shard-size", type=int, default=250)
    args = ap.parse_args()
    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'task':8} {'rows':>6} {'serial rows/s':>14} {'ray rows/s':>11} {'ratio':>6}")
        for task in args.tasks:
            common = dict(task=task, n=args.n, seed=0, shard_size=args.shard_size)
            timed(**{**common, "n": 2 * args.shard_size}, out=f"{tmp}/warm.parquet")  # warm the workers
            serial = timed(**common, out=f"{tmp}/s.parquet", parallel=False)
            ray_t = timed(**common, out=f"{tmp}/p.parquet", parallel=True)
            print(f"{task:8} {args.n:6d} {args.n / serial:14.0f} {args.n / ray_t:11.0f} {serial / ray_t:6.2f}x")


if __name__ == "__main__":
    main()
