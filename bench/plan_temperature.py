"""What the first-attempt temperature costs: MTP accuracy of one checkpoint at several planning
temperatures, on the same held-out validation problems, in one run.

The paper's Sudoku first attempts sample at temperature 1 (paper Table 3, a garbled row read
with App. D.4's text; docs/decisions.md), Mult's are greedy. A 1M Sudoku step writes 81 cells,
and every cell sampled at temperature 1 is a chance to write a wrong digit; this prints how much
accuracy that costs, with 95% Wilson intervals and each temperature's difference from the first
(Newcombe intervals).

    python bench/plan_temperature.py --checkpoint runs/cpu-sudoku/stage2-sft/final --task sudoku-board
    python bench/plan_temperature.py --checkpoint runs/cpu-small/stage2-sft/final --task mult --temperatures 0 0.75
"""

from __future__ import annotations

import argparse

from cot_ray.data.splits import problems
from cot_ray.evaluate import Summary
from cot_ray.mtp import ExecutionConfig
from cot_ray.rollout.pool import RolloutPool
from cot_ray.stats import verdict
from cot_ray.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--checkpoint", required=True, help="HF checkpoint folder (a run's stage2-sft/final)")
    p.add_argument("--task", required=True)
    p.add_argument("--temperatures", nargs="+", type=float, default=[0.0, 1.0], help="the first is the baseline")
    p.add_argument("--difficulties", nargs="+", default=["id-easy", "id-hard"])
    p.add_argument("--n", type=int, default=100, help="validation problems per difficulty")
    p.add_argument("--seed", type=int, default=1, help="the validation stream's seed (the pipeline's eval.seed)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    task = get_task(args.task)
    pool = RolloutPool(args.checkpoint, num_workers=args.workers)
    try:
        pool.wait_ready()
        print("| split | temperature | MTP accuracy | difference from the first |\n|---|---|---|---|")
        for d in args.difficulties:
            probs = problems(task, d, args.n, args.seed, "validation")
            base = None
            for t in args.temperatures:
                s = Summary.of(pool.run(args.task, probs, ExecutionConfig(mode="mtp", plan_temperature=t,
                                                                         seed=args.seed)))
                base = base or s
                diff = "-" if s is base else verdict(s.correct, s.n, base.correct, base.n)
                acc = f"{100 * s.accuracy:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"
                print(f"| {d} | {t:g} | {acc} | {diff} |", flush=True)
    finally:
        pool.shutdown()


if __name__ == "__main__":
    main()
