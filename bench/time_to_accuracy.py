"""Time to accuracy: how fast a 1M policy learns multiplication under each step layout.

Trains the stage-II policy (state -> step, loss on the step) from scratch on the same problems
written in each layout, at an equal number of optimiser steps and batch size, in one run, and
every ``--eval-every`` steps measures greedy MTP accuracy on held-out validation problems (never
in the training set). Prints accuracy (with 95% Wilson intervals) against training tokens and
wall time, the first wrong element of failing problems, and how many tokens and seconds the last
layout needed to reach the first layout's final accuracy.

    python bench/time_to_accuracy.py                       # mult-msd (the old layout) vs mult
    python bench/time_to_accuracy.py --steps 300 --eval-every 100 --corpus 1000 --val-n 50  # quick

Training runs in this process on plain torch (the same step and schedule as the Ray Train
loop); evaluation uses the torch reference engine, so the bench needs neither Ray nor vLLM.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from cot_ray.config import TrainConfig
from cot_ray.data.corpus import make_table
from cot_ray.data.splits import held_out, problems
from cot_ray.evaluate import evaluate, first_failure
from cot_ray.model import build_model, save_checkpoint
from cot_ray.mtp import ExecutionConfig
from cot_ray.rollout.engines import TorchPolicy
from cot_ray.stats import wilson
from cot_ray.tasks import get_task
from cot_ray.tokenizer import Tokenizer
from cot_ray.train.batches import length_grouped_batches, pad_examples
from cot_ray.train.data import examples_of, sft_batch
from cot_ray.train.harness import lr_at
from cot_ray.train.loop import make_optimizer, supervised_step


def curve(layout: str, args: argparse.Namespace, out: Path) -> list[dict]:
    """Train one layout; the evaluation rows along the way."""
    task = get_task(layout)
    exclude = held_out(task, args.difficulties, args.test_n, args.val_n, args.seed)
    val = {d: problems(task, d, args.val_n, args.seed, "validation") for d in args.difficulties}
    table = make_table(layout, None, 0, 0, args.corpus, exclude)
    data = examples_of(sft_batch(table))
    pad = Tokenizer().pad_id
    torch.manual_seed(0)
    model = build_model("1M", seed=0, max_positions=1024)
    opt = make_optimizer(model, args.lr, 0.1)
    sched = TrainConfig(lr=args.lr, min_lr=args.lr / 20, warmup_steps=50)
    rng = np.random.default_rng(0)
    lengths = np.array([len(ids) for ids, _ in data])
    batches: list[np.ndarray] = []
    tokens, train_s, rows = 0, 0.0, []
    print(f"{layout}: {len(data)} training steps (state -> step pairs) from {args.corpus} problems, "
          f"{np.mean([len(i) for i, _ in data]):.0f} tokens per example", flush=True)
    for step in range(args.steps):
        t0 = time.perf_counter()
        if not batches:
            batches = length_grouped_batches(lengths, args.batch_size, rng)
        batch = [data[k] for k in batches.pop()]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, sched, args.steps)
        x, y, mask = (torch.from_numpy(a) for a in pad_examples(batch, pad, 1024))
        loss = supervised_step(model.train(), opt, x, y, mask, 1.0)
        tokens += sum(len(ids) for ids, _ in batch)
        train_s += time.perf_counter() - t0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            rows.append(_evaluate(layout, task, model, val, step + 1, tokens, train_s, loss, out))
    return rows


def _evaluate(layout, task, model, val, step, tokens, train_s, loss, out: Path) -> dict:
    row = {"layout": layout, "step": step, "tokens": tokens, "train_s": round(train_s, 1), "loss": round(loss, 4)}
    errors: Counter[str] = Counter()
    ckpt = out / f"{layout}-latest"  # kept, to inspect what the model writes
    save_checkpoint(model, ckpt)
    policy = TorchPolicy(str(ckpt))
    correct = total = 0
    for difficulty, probs in val.items():
        trajs = evaluate(task, policy, probs, ExecutionConfig(mode="mtp"))
        k = sum(t.correct for t in trajs)
        lo, hi = wilson(k, len(trajs))
        row[difficulty] = f"{100 * k / len(trajs):.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        correct, total = correct + k, total + len(trajs)
        errors.update(e for t in trajs if not t.correct and (e := first_failure(t, task)[0]))
    row["accuracy"] = correct / total
    row["first_errors"] = " ".join(f"{k}:{v}" for k, v in errors.most_common(5))
    print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def tokens_to_reach(rows: list[dict], target: float) -> dict | None:
    """The first evaluation row at or above ``target`` accuracy."""
    return next((r for r in rows if r["accuracy"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layouts", nargs="+", default=["mult-msd", "mult"],
                    help="task names to compare; the first is the baseline")
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps per layout")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--corpus", type=int, default=6000, help="training problems (in-distribution mix)")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--val-n", type=int, default=200, help="validation problems per difficulty")
    ap.add_argument("--test-n", type=int, default=200, help="test problems per difficulty (excluded too)")
    ap.add_argument("--difficulties", nargs="+", default=["id-easy", "id-hard"])
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out streams")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-time-to-accuracy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {layout: curve(layout, args, out) for layout in args.layouts}
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(next(iter(rows.values()))[0]))
        writer.writeheader()
        for r in rows.values():
            writer.writerows(r)
    base, *others = args.layouts
    final = rows[base][-1]
    print(f"\n{base} final: accuracy {100 * final['accuracy']:.1f}% after {final['tokens']} tokens, "
          f"{final['train_s']}s of training")
    for layout in others:
        hit = tokens_to_reach(rows[layout], final["accuracy"])
        if hit is None:
            print(f"{layout}: never reached {100 * final['accuracy']:.1f}% within {args.steps} steps")
        else:
            print(f"{layout}: reached {100 * hit['accuracy']:.1f}% at step {hit['step']}: "
                  f"{hit['tokens'] / final['tokens']:.2f}x the tokens, {hit['train_s'] / final['train_s']:.2f}x "
                  f"the training time of {base}")
        last = rows[layout][-1]
        print(f"{layout} final: accuracy {100 * last['accuracy']:.1f}% after {last['tokens']} tokens")
    _plot(rows, out / "curves.png")
    print(f"curves: {out / 'curves.csv'}, {out / 'curves.png'}")


def _plot(rows: dict[str, list[dict]], path: Path) -> None:
    from cot_ray.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for layout, r in rows.items():
        ax.plot([x["tokens"] / 1e6 for x in r], [100 * x["accuracy"] for x in r], marker="o", label=layout)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("held-out MTP accuracy, ID-Easy + ID-Hard (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    save(fig, path)


if __name__ == "__main__":
    main()
