"""Stage III arms: which reflective-SFT data teaches a self-verifier that checks steps?

Trains stage III several times from one run's stage-II policy, on that run's stage-III samples, at
an equal budget (the config's steps and batch), in one run, and evaluates every arm on the
validation split (held out of every training set; the test split is left to the report): MTP and
RMTP accuracy with 95% intervals, the policy's e+ / e- on first attempts and on revisions, and the
difference of every arm from the first.

Arms (``--arms``; the first is the baseline):

- ``plain``: the samples as stored (the run's ``data/reflective-<task>.parquet``), the config as is.
- ``pairs``: the same negatives and the same number of positives, the positives taken first from
  the expert's steps at the states of the wrong ones (``cot_ray.train.reflective.expert_partners``):
  at the states where the policy errs almost every sampled step is wrong, so "this state is hard"
  predicts the label nearly as well as the step does; pairs take that shortcut away.
- ``unlabelled-planning``: the samples as stored, but the re-mixed expert planning examples are plain
  state -> step examples (``reflective_sft.planning_labels: false``). With labels, every planning
  example also teaches a ✓ (on cpu-small 26,526 of them against 1,202 sampled ✗: a 96% prior for ✓),
  whatever the balance of the sampled examples.
- ``unlabelled-pairs``: both: the ``pairs`` data with unlabelled planning examples.
- ``weighted-rejects``: the samples as stored, every ✗ label token weighted ``--reject-weight`` in the
  loss (``reflective_sft.reject_label_weight``). A detailed Sudoku label has 2-3 ✗ among 81 cells,
  so at weight 1 the verifier learns to write ✓ everywhere.

    python bench/reflective_arms.py --run runs/cpu-small                       # plain vs pairs
    python bench/reflective_arms.py --run runs/cpu-small --arms plain unlabelled-planning
    python bench/reflective_arms.py --run runs/cpu-small --arms unlabelled-planning unlabelled-pairs
    python bench/reflective_arms.py --run runs/cpu-sudoku --arms plain weighted-rejects
    python bench/reflective_arms.py --run runs/smoke --n 20   # quick
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cot_ray.config import load_config
from cot_ray.data.splits import problems
from cot_ray.evaluate import Summary
from cot_ray.stats import diff_interval
from cot_ray.tasks import get_task
from cot_ray.train.reflective import balance, expert_partners
from cot_ray.verify import verification_counts

ARMS = ("plain", "pairs", "unlabelled-planning", "unlabelled-pairs", "weighted-rejects")
"""Every arm; each trains on :func:`datasets`' data for it, with :func:`arm_config`'s stage III."""


def arm_config(arm: str, r, reject_weight: float):
    """The run's stage-III config as ``arm`` changes it."""
    if arm.startswith("unlabelled"):
        return r.model_copy(update={"planning_labels": False})
    if arm == "weighted-rejects":
        return r.model_copy(update={"reject_label_weight": reject_weight})
    return r


def datasets(run: Path, task: str, out: Path, detailed: bool, seed: int, arms: list[str]) -> dict[str, Path]:
    """Each arm's stage-III data: equal size, equal negatives, equal positive count."""
    stored = pq.read_table(run / "data" / f"reflective-{task}.parquet").to_pylist()
    records = [{**r, "source": "policy"} for r in stored]
    positives = sum(r["correct"] for r in records)
    negatives = len(records) - positives
    partners = expert_partners(task, records, detailed) if any(a.endswith("pairs") for a in arms) else []

    def paired() -> list[dict]:
        return balance(records + partners, positives / len(records), False, random.Random(seed))

    rows_of = {"plain": lambda: records, "unlabelled-planning": lambda: records, "pairs": paired,
               "unlabelled-pairs": paired, "weighted-rejects": lambda: records}
    paths = {}
    for arm in arms:
        rows = rows_of[arm]()
        paths[arm] = out / arm / f"reflective-{task}.parquet"
        paths[arm].parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), paths[arm])
        n_pos = sum(r["correct"] for r in rows)
        print(f"{arm}: {len(rows)} verification examples, {n_pos} correct steps "
              f"({sum(r['source'] == 'expert' for r in rows)} of them the expert's), {len(rows) - n_pos} wrong")
    print(f"(stored: {positives} correct, {negatives} wrong; {len(partners)} states with a wrong step)")
    return paths


def evaluate_arm(config, checkpoint: Path, task: str, difficulties: list[str], n: int) -> dict:
    """MTP and RMTP on ``n`` validation problems per difficulty, on a rollout pool over ``checkpoint``."""
    from cot_ray.pipeline import with_pool

    def work(pool) -> dict:
        rows = {}
        for d in difficulties:
            probs = problems(get_task(task), d, n, config.eval.seed, "validation")
            mtp = pool.run(task, probs, config.eval.execution("mtp", task))
            rmtp = pool.run(task, probs, config.eval.execution("rmtp", task))
            first, revision = verification_counts(rmtp), verification_counts(rmtp, revisions=True)
            rows[d] = {"mtp": Summary.of(mtp), "rmtp": Summary.of(rmtp), "e+": first.e_plus, "e-": first.e_minus,
                       "rev e+": revision.e_plus, "rev e-": revision.e_minus}
        return rows

    return with_pool(config, checkpoint, work)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _acc(s: Summary) -> str:
    return f"{100 * s.accuracy:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"


def _diff(a: Summary, b: Summary) -> str:
    lo, hi = diff_interval(a.correct, a.n, b.correct, b.n)
    return f"{100 * (a.accuracy - b.accuracy):+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--run", required=True, help="a run folder with stage2-sft/final and data/reflective-<task>.parquet")
    p.add_argument("--config", default=None, help="stage III's budget, the pool and the eval seed (default: the "
                   "run's own config.json)")
    p.add_argument("--task", default=None, help="default: the config's first corpus task")
    p.add_argument("--difficulties", nargs="+", default=["id-easy", "id-hard"])
    p.add_argument("--n", type=int, default=None, help="validation problems per difficulty (default eval.validation_n)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["plain", "pairs"],
                   help="arms to train and compare; the first is the baseline (default: plain pairs)")
    p.add_argument("--reject-weight", type=float, default=10.0, help="the weighted-rejects arm's ✗ weight")
    p.add_argument("--out", default=None, help="default: <run>/bench-reflective-arms")
    args = p.parse_args()
    if len(set(args.arms)) != len(args.arms) or len(args.arms) < 2:
        p.error("--arms: name at least two different arms")

    from cot_ray.train.stages import reflective_dataset, run_stage

    run = Path(args.run).resolve()
    config = load_config(args.config or run / "config.json")
    task = args.task or config.corpus.tasks[0]
    out = Path(args.out or run / "bench-reflective-arms").resolve()
    n = args.n or config.eval.validation_n
    r = config.reflective_sft
    paths = datasets(run, task, out, r.verification in ("detailed", "optional"), r.seed, args.arms)
    corpora = [str(run / "data" / f"corpus-{t}.parquet") for t in config.corpus.tasks]
    results, seconds = {}, {}
    for arm in args.arms:
        t0 = time.time()
        cfg = arm_config(arm, r, args.reject_weight)
        final = run_stage("reflective-sft", cfg, config.model, reflective_dataset(corpora, [str(paths[arm])], cfg),
                          out / arm / "stage3", init=str(run / "stage2-sft" / "final"))
        results[arm] = evaluate_arm(config, final, task, args.difficulties, n)
        seconds[arm] = time.time() - t0
        print(f"{arm}: trained and evaluated in {seconds[arm]:.0f}s", flush=True)

    print(f"\nvalidation split, {n} problems per difficulty; accuracy % [95% interval]; e+/e- % of the policy's "
          "own verifications (first attempts; revisions)")
    print("| arm | split | MTP | RMTP | e+ | e- | revision e+ | revision e- |\n|---|---|---|---|---|---|---|---|")
    for arm in args.arms:
        for d, row in results[arm].items():
            print(f"| {arm} | {d} | {_acc(row['mtp'])} | {_acc(row['rmtp'])} | {_pct(row['e+'])} | {_pct(row['e-'])} "
                  f"| {_pct(row['rev e+'])} | {_pct(row['rev e-'])} |")
    base, *others = args.arms
    print("\n| arm | split | arm - " + base + ", MTP | arm - " + base + ", RMTP | RMTP - MTP |\n|---|---|---|---|---|")
    for arm in args.arms:
        for d in args.difficulties:
            a, b = results[arm][d], results[base][d]
            vs = "- | -" if arm == base else f"{_diff(a['mtp'], b['mtp'])} | {_diff(a['rmtp'], b['rmtp'])}"
            print(f"| {arm} | {d} | {vs} | {_diff(a['rmtp'], a['mtp'])} |")
    print("\n" + ", ".join(f"time ratio {arm}/{base}: {seconds[arm] / seconds[base]:.2f}" for arm in others))


if __name__ == "__main__":
    main()
