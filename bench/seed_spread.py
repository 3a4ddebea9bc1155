"""The seed spread of stage II: how far two runs of one config land apart, so that "the same
accuracy" has a meaning (a change whose difference stays inside this spread changed nothing).

Trains stage II of a config once per seed from one run's stage-I checkpoint (the seed orders the
batches; the run's own stage II is the config's seed and is reused), then evaluates MTP of every
seed's policy on the same held-out problems (the validation split by default; questions the run
trained on are skipped), on one rollout pool reloaded per seed. Prints each seed's accuracy with
its 95% Wilson interval, every seed against the first paired on the same problems, and the spread
(max - min) per difficulty.

    python bench/seed_spread.py --run runs/cpu-small --config configs/cpu-small.yaml
    python bench/seed_spread.py --run runs/smoke --config configs/smoke.yaml --seeds 0 1 --n id-easy=20   # quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import accuracy_cell, held_out_args, paired_cell, trained_on

from cot_ray.config import PipelineConfig, load_config
from cot_ray.layout import RunLayout, is_complete


def train(config: PipelineConfig, run: Path, out: Path, seed: int) -> Path:
    """Stage II of ``config`` with ``seed`` from the run's stage-I policy (the run's own at its seed)."""
    from cot_ray.train.stages import corpus_dataset, run_stage

    own = RunLayout(run)
    if seed == config.sft.seed and is_complete(own.final("sft")):
        return own.final("sft")
    if is_complete(out / f"seed-{seed}" / "final"):
        return out / f"seed-{seed}" / "final"
    corpora = [str(own.corpus(t)) for t in config.corpus.tasks]
    return run_stage("sft", config.sft.model_copy(update={"seed": seed}), config.model,
                     corpus_dataset(corpora, "sft"), out / f"seed-{seed}", init=str(own.final("pretrain")))


def evaluate(config: PipelineConfig, run: Path, finals: dict[int, Path], sizes: dict[str, int],
             split: str) -> dict[int, dict[str, list[bool]]]:
    """MTP outcomes of every seed's policy on the same problems, one pool reloaded per seed."""
    from cot_ray.data.splits import problems
    from cot_ray.rollout.keeper import PoolKeeper
    from cot_ray.tasks import get_task

    task = config.corpus.tasks[0]
    exclude = trained_on(config, run, task)
    probs = {d: problems(get_task(task), d, n, config.eval.seed, split, exclude) for d, n in sizes.items()}
    results = {}
    with PoolKeeper(config.rollout) as pools:
        for seed, final in finals.items():
            pool = pools.get(final)
            results[seed] = {d: [t.correct for t in pool.run(task, ps, config.eval.execution("mtp", task))]
                             for d, ps in probs.items()}
    return results


def report(results: dict[int, dict[str, list[bool]]], split: str) -> str:
    """The table the bench prints (markdown)."""
    seeds = list(results)
    first = seeds[0]
    lines = [f"stage II, MTP, {split} split; accuracy % [95% Wilson]; against seed {first}: paired difference "
             "[95% interval]", "", "| seed | split | accuracy | vs first seed |", "|---|---|---|---|"]
    for seed in seeds:
        for d, outcomes in results[seed].items():
            vs = paired_cell(outcomes, results[first][d]) if seed != first else "-"
            lines.append(f"| {seed} | {d} | {accuracy_cell(outcomes)} | {vs} |")
    lines.append("")
    for d in results[first]:
        accuracy = [100 * sum(results[s][d]) / len(results[s][d]) for s in seeds]
        lines.append(f"{d}: spread {max(accuracy) - min(accuracy):.1f} points over {len(seeds)} seeds "
                     f"({', '.join(f'{a:.1f}' for a in accuracy)}), {len(results[first][d])} problems each")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    held_out_args(p, "stage1-pretrain/final and data/corpus-<task>.parquet", "stage II's recipe")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="stage-II seeds; the first is the reference")
    p.add_argument("--out", default=None, help="default: <run>/bench-seed-spread")
    args = p.parse_args()
    if len(set(args.seeds)) < 2:
        p.error("--seeds: name at least two different seeds")
    run, config = Path(args.run).resolve(), load_config(args.config)
    out = Path(args.out or run / "bench-seed-spread").resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    finals = {seed: train(config, run, out, seed) for seed in args.seeds}
    t1 = time.time()
    results = evaluate(config, run, finals, dict(args.n), args.split)
    (out / f"results-{args.split}.json").write_text(json.dumps({str(s): r for s, r in results.items()}))
    print(report(results, args.split))
    print(f"\ntraining {t1 - t0:.0f}s, evaluation {time.time() - t1:.0f}s; outcomes in {out}/results-{args.split}.json")


if __name__ == "__main__":
    main()
