"""Stage-IV step-time split, synchronous vs asynchronous, measured in one run.

    .venv/bin/python bench/rl_step_split.py [--init CHECKPOINT] [--updates 12]

Without ``--init`` a tiny model is first trained on toy multiplication (stages I-II, about two
minutes) so that GRPO has rewards to work with. Prints, per mode, the mean seconds per update
spent generating (rollout pool), scoring (reward actor), learning (Ray Train learner), syncing
weights (save + vLLM reload), and the learner's idle time, with the two targets: weight sync
<= 5% of the step time, and in async mode learner idle <= 20% of the learner's wall time.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import yaml

CONFIG = {k: v for k, v in yaml.safe_load(open("configs/toy-mult.yaml")).items() if k != "rl"}


def split(path: Path) -> dict[str, float]:
    with open(path) as f:
        rows = list(csv.DictReader(f))[2:]  # the first updates include engine and learner warm-up
    mean = {k: sum(float(r[k]) for r in rows) / len(rows)
            for k in ("generate_s", "score_s", "learn_s", "sync_s", "learner_idle_s", "step_s")}
    return mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default=None)
    ap.add_argument("--updates", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=4, help="passes per batch (paper: 4)")
    args = ap.parse_args()

    from cot_ray.config import PipelineConfig
    from cot_ray.pipeline import corpus_stage, train_stage
    from cot_ray.raycluster import ensure_ray
    from cot_ray.rl.driver import run_rl

    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        init = args.init
        base = PipelineConfig.model_validate(CONFIG)
        if init is None:
            corpora = corpus_stage(base, out, progress=False)
            train_stage("pretrain", base, out, corpora, progress=False)
            init = str(train_stage("sft", base, out, corpora, progress=False))
        results = {}
        for mode in ("sync", "async"):
            rl = {"updates": args.updates, "queries_per_update": 32, "group_size": 8, "difficulty": "toy",
                  "lr": 0.0003, "epochs": args.epochs, "minibatch_size": 64, "asynchronous": mode == "async"}
            cfg = PipelineConfig.model_validate({**CONFIG, "rl": rl})
            run_rl(cfg, init, "mtp", out / f"rl-{mode}", progress=False)
            results[mode] = split(out / f"rl-{mode}" / "metrics.csv")
    print(f"{'mode':6} {'step s':>7} {'generate':>9} {'score':>7} {'learn':>7} {'sync':>7} {'idle':>7}"
          f" {'sync/step':>10} {'idle/learner':>13}")
    for mode, m in results.items():
        learner_wall = m["learn_s"] + m["learner_idle_s"]
        print(f"{mode:6} {m['step_s']:7.2f} {m['generate_s']:9.2f} {m['score_s']:7.2f} {m['learn_s']:7.2f}"
              f" {m['sync_s']:7.2f} {m['learner_idle_s']:7.2f} {m['sync_s'] / m['step_s']:9.1%}"
              f" {m['learner_idle_s'] / learner_wall:12.1%}")
    print("targets: sync/step <= 5%; async idle/learner <= 20%")


if __name__ == "__main__":
    main()
