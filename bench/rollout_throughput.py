"""Rollout throughput: the MTP loop through the pool vs raw engine calls vs HF generate.

    .venv/bin/python bench/rollout_throughput.py [--checkpoint DIR] [--n 1024]

One run prints (a) tokens/s of MTP sampling through a 1-worker vLLM pool against one
single-shot ``llm.generate`` call producing the same number of tokens on the same engine, over as
many prompts as the engine batches at once (``--raw-width``, vLLM-CPU's max_num_seqs) (target
>= 0.8x), (b) the same MTP loop with the plain-torch engine (HF ``generate``) in the same kind of
worker (target: vLLM pool >= 1.5x), and (c) the pool with 1 and 2 workers.
Without ``--checkpoint`` a fresh 1M model is used; a trained one (e.g. stage2-sft/final)
writes realistic, longer steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def mtp_run(pool, task: str, problems, unit_size: int) -> tuple[int, float]:
    from cot_ray.mtp import ExecutionConfig

    cfg = ExecutionConfig(mode="mtp", plan_temperature=1.0, seed=1)
    pool.run(task, problems[: unit_size], cfg, unit_size=unit_size)  # warm-up
    t0 = time.perf_counter()
    trajs = pool.run(task, problems, cfg, unit_size=unit_size)
    return sum(t.n_tokens for t in trajs), time.perf_counter() - t0


def raw_generate(pool, n_prompts: int, tokens: int) -> float:
    """One single-shot batch on a worker's engine producing ``tokens`` tokens in all."""
    from cot_ray.mtp import SamplingSpec
    from cot_ray.tokenizer import Tokenizer

    tok = Tokenizer()
    per = max(1, tokens // n_prompts)
    prompts = [tok.plan_prompt(f"{1234 + i}*{56 + i}+0") for i in range(n_prompts)]
    spec = [SamplingSpec(temperature=1.0, max_tokens=per, ignore_eos=True, seed=i) for i in range(n_prompts)]
    pool.generate(prompts[:8], spec[:8])  # warm-up
    t0 = time.perf_counter()
    out = pool.generate(prompts, spec)
    seconds = time.perf_counter() - t0
    assert sum(len(c.token_ids) for c in out) == per * n_prompts
    return per * n_prompts / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--task", default="mult")
    ap.add_argument("--difficulty", default="id-easy")
    ap.add_argument("--n", type=int, default=1024, help="problems per measurement")
    ap.add_argument("--unit-size", type=int, default=128)
    ap.add_argument("--raw-width", type=int, default=256, help="prompts in the single-shot baseline")
    args = ap.parse_args()

    from cot_ray.data.splits import make_problem
    from cot_ray.model import build_model, save_checkpoint
    from cot_ray.raycluster import ensure_ray
    from cot_ray.rollout.pool import RolloutPool
    from cot_ray.tasks import get_task

    ensure_ray()
    task = get_task(args.task)
    problems = [make_problem(task, args.difficulty, 0, i) for i in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            ckpt = f"{tmp}/model"
            save_checkpoint(build_model("1M"), ckpt)
        rows = []
        with RolloutPool(ckpt, num_workers=1, engine="vllm") as pool:
            pool.wait_ready()
            tokens, seconds = mtp_run(pool, args.task, problems, args.unit_size)
            mtp1 = tokens / seconds
            raw = raw_generate(pool, args.raw_width, tokens)
            pool.scale(2)
            pool.wait_ready()
            tokens2, seconds2 = mtp_run(pool, args.task, problems, args.unit_size)
            mtp2 = tokens2 / seconds2
        with RolloutPool(ckpt, num_workers=1, engine="torch") as pool:
            pool.wait_ready()
            tokens_hf, seconds_hf = mtp_run(pool, args.task, problems, args.unit_size)
            hf = tokens_hf / seconds_hf
        rows = [
            ("raw llm.generate, one batch (vLLM)", raw, "-"),
            ("MTP via pool, 1 worker (vLLM)", mtp1, f"{mtp1 / raw:.2f}x of raw (target >= 0.8x)"),
            ("MTP via pool, 1 worker (HF generate)", hf, f"vLLM pool is {mtp1 / hf:.2f}x this (target >= 1.5x)"),
            ("MTP via pool, 2 workers (vLLM)", mtp2, f"{mtp2 / mtp1:.2f}x of 1 worker"),
        ]
    print(f"checkpoint: {args.checkpoint or 'fresh 1M model'}; {args.n} {args.task} {args.difficulty} problems; "
          f"{tokens} tokens per MTP run")
    print(f"{'run':40} {'tokens/s':>9}  comparison")
    for name, value, note in rows:
        print(f"{name:40} {value:9.0f}  {note}")


if __name__ == "__main__":
    main()
