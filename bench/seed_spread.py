r"""The seed spread of stage II: how far two runs of one config land apart, so that "the same
accuracy" has a meaning (a change whose difference stays inside this spread changed nothing);
and, with ``--batching``, what a batching scheme does to accuracy at the same seeds.

Trains stage II of a config once per (seed, batching) from one run's stage-I checkpoint (the
seed orders the batches; the run's own stage II, at the config's seed and batching, is reused),
then evaluates MTP of every arm's policy on the same held-out problems (the validation split by
default; questions the run trained on are skipped), on one rollout pool reloaded per arm. Prints
each arm's accuracy with its 95% Wilson interval, every arm against the first paired on the same
problems, the spread (max - min) per difficulty, and each arm's training time.

    python bench/seed_spread.py --run runs/cpu-small --config configs/cpu-small.yaml
    python bench/seed_spread.py --run runs/cpu-small --config configs/cpu-small.yaml --seeds 0 \
        --batching per-rank global
    python bench/seed_spread.py --run runs/smoke --config configs/smoke.yaml --seeds 0 1 --n id-easy=20   # quick
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from common import accuracy_cell, held_out_args, paired_cell, trained_on

from cot_ray.config import Batching, PipelineConfig, load_config
from cot_ray.layout import RunLayout, is_complete


@dataclass(frozen=True)
class Arm:
    """One stage-II training: the seed that orders its batches and how they are cut across ranks."""

    seed: int
    batching: Batching

    def __str__(self) -> str:
        return f"seed {self.seed}, {self.batching}"


def train(config: PipelineConfig, run: Path, out: Path, arm: Arm) -> tuple[Path, float]:
    """Stage II of ``config`` as ``arm`` from the run's stage-I policy (the run's own where it is
    that arm); the final checkpoint and the seconds it took (0 for one trained before)."""
    from cot_ray.train.stages import corpus_dataset, run_stage

    own, folder = RunLayout(run), out / f"seed-{arm.seed}-{arm.batching}"
    if arm == Arm(config.sft.seed, config.sft.batching) and is_complete(own.final("sft")):
        return own.final("sft"), 0.0
    if is_complete(folder / "final"):
        return folder / "final", 0.0
    t0 = time.time()
    corpora = [str(own.corpus(t)) for t in config.corpus.tasks]
    final = run_stage("sft", config.sft.model_copy(update={"seed": arm.seed, "batching": arm.batching}),
                      config.model, corpus_dataset(corpora, "sft"), folder, init=str(own.final("pretrain")))
    return final, time.time() - t0


def evaluate(config: PipelineConfig, run: Path, finals: dict[Arm, Path], sizes: dict[str, int],
             split: str) -> dict[Arm, dict[str, list[bool]]]:
    """MTP outcomes of every arm's policy on the same problems, one pool reloaded per arm."""
    from cot_ray.data.splits import problems
    from cot_ray.rollout.keeper import PoolKeeper
    from cot_ray.tasks import get_task

    task = config.corpus.tasks[0]
    exclude = trained_on(config, run, task)
    probs = {d: problems(get_task(task), d, n, config.eval.seed, split, exclude) for d, n in sizes.items()}
    results = {}
    with PoolKeeper(config.rollout) as pools:
        for arm, final in finals.items():
            pool = pools.get(final)
            results[arm] = {d: [t.correct for t in pool.run(task, ps, config.eval.execution("mtp", task))]
                             for d, ps in probs.items()}
    return results


def report(results: dict[Arm, dict[str, list[bool]]], seconds: dict[Arm, float], split: str) -> str:
    """The table the bench prints (markdown)."""
    arms = list(results)
    first = arms[0]
    lines = [f"stage II, MTP, {split} split; accuracy % [95% Wilson]; against {first}: paired difference "
             "[95% interval]; training seconds (0: trained before)", "",
             "| arm | split | accuracy | vs first arm | training s |", "|---|---|---|---|---|"]
    for arm in arms:
        for d, outcomes in results[arm].items():
            vs = paired_cell(outcomes, results[first][d]) if arm != first else "-"
            lines.append(f"| {arm} | {d} | {accuracy_cell(outcomes)} | {vs} | {seconds[arm]:.0f} |")
    lines.append("")
    for d in results[first]:
        accuracy = [100 * sum(results[a][d]) / len(results[a][d]) for a in arms]
        lines.append(f"{d}: spread {max(accuracy) - min(accuracy):.1f} points over {len(arms)} arms "
                     f"({', '.join(f'{a:.1f}' for a in accuracy)}), {len(results[first][d])} problems each")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    held_out_args(p, "stage1-pretrain/final and data/corpus-<task>.parquet", "stage II's recipe")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="stage-II seeds")
    p.add_argument("--batching", nargs="+", choices=get_args(Batching), default=None,
                   help="trainer.batching of each arm (default: the config's); every seed runs with each, "
                        "the first (seed, batching) is the reference")
    p.add_argument("--out", default=None, help="default: <run>/bench-seed-spread")
    args = p.parse_args()
    run, config = Path(args.run).resolve(), load_config(args.config)
    arms = list(dict.fromkeys(Arm(seed, b) for seed in args.seeds for b in args.batching or [config.sft.batching]))
    if len(arms) < 2:
        p.error("name at least two arms: two --seeds, or two --batching")
    out = Path(args.out or run / "bench-seed-spread").resolve()
    out.mkdir(parents=True, exist_ok=True)
    trained = {arm: train(config, run, out, arm) for arm in arms}
    t1 = time.time()
    results = evaluate(config, run, {arm: final for arm, (final, _) in trained.items()}, dict(args.n), args.split)
    (out / f"results-{args.split}.json").write_text(json.dumps({str(a): r for a, r in results.items()}))
    print(report(results, {arm: s for arm, (_, s) in trained.items()}, args.split))
    print(f"\nevaluation {time.time() - t1:.0f}s; outcomes in {out}/results-{args.split}.json")


if __name__ == "__main__":
    main()
