"""Stage III arms: which reflective-SFT recipe teaches a verifier that checks the step?

Trains stage III once per arm from one run's stage-II policy, at an equal budget (the config's
steps and batch), in one run, and measures every arm on the same held-out problems (the
validation split by default: decide there, report on ``--split test``):

- **discrimination** (``cot_ray.verify.discrimination``): within-state and pooled AUC of the
  verifier's teacher-forced acceptance, on the same proposals for every arm (the stage-II
  policy's greedy step and ``--auc-samples`` samples at each state of its greedy runs), and the
  acceptance of right greedy steps against right samples at the same states. The gate: an arm
  is worth its RMTP evaluation when its within-state AUC rises;
- **accuracy**: MTP and RMTP (``--modes``) of each arm's checkpoint on the same problems, the
  paired RMTP - MTP difference with its 95% interval, every arm against the first (paired);
- **expert probes** (``bench/verifier_probe.py``): the within-state AUC of the expert's step
  against one element of each kind wrong, at every state of ``--probe-problems`` held-out expert
  paths per difficulty: hundreds of states where the policy's own proposals give tens, and which
  elements each arm's verifier sees;
- **e+ / e-** on first attempts and on revisions (the attempts after a rejection).

Arms (``--arms``; the first is the baseline):

- ``plain``: the first recipe: the run's own stage-III samples (``data/reflective-<task>.parquet``,
  correct steps capped at half) with labelled planning examples (the run's own stage III is
  reused when it exists);
- ``per-state``: every state as many ✓ as ✗ (``reflective_sft.balance: per-state``), the greedy
  step among the proposals, unlabelled planning examples;
- ``per-state-detailed``: the same samples, one label per element (``verification: detailed``);
- ``per-state-half``: ``per-state`` with half of the mixture verification (``verification_share: 0.5``);
- ``per-state-weighted``: ``per-state`` with every label token weighted 200 in the loss
  (``verification_weight``): a binary label is one token beside ~100 planning tokens per example;
- ``per-state-restated`` (Mult): ``per-state-detailed`` in the ``mult-restated`` format: before the
  label of each digit product its inputs (the other operand's digit, u, the carry written before
  it), before each copy the number copied, so a label checks what sits beside it;
- ``per-state-recomputed`` (Mult): ``per-state-restated`` in the ``mult-recomputed`` format: each
  product's inputs, the written value and ``=`` the right one, each sum after ``=`` the right sum
  of the numbers written before it: the verifier computes what it checks (a generation target on
  every example) and its label compares two adjacent numbers;
- ``per-state-paired`` (Mult): ``per-state-recomputed`` in the ``mult-paired`` format: each copy,
  sum and answer interleaved digit by digit with what it must equal, so a label looks for one
  differing adjacent pair (wrong copies and answers are most of the policy's wrong steps);
- ``restated-half``: ``per-state-restated`` with half of the mixture verification: the exposure
  control of the next arm;
- ``restated-every-kind``: ``restated-half`` with one corruption of every element kind at every
  state (``corruptions: every-kind``): the ✗ labels of every element common (at ``fill``, 0.9% of
  the product labels were ✗);
- ``restated-every-kind-4x``: ``restated-every-kind`` with 4x stage III's steps (2,000): the budget
  lever, against ``restated-every-kind`` (not an equal-budget arm; its time ratio says the cost);
- ``restated-every-kind-90``: ``restated-every-kind`` with 90% of the mixture verification: can the
  model learn the checks at all in stage III's budget (a learnability probe, not a recipe: planning
  suffers).

An arm with a task variant (the ``restated`` arms) labels the same sampled steps, and runs the same
problems, in that variant's verification format; its planning steps are the run's task's.

An arm measured on the same problems by an earlier invocation (``results-<split>.json``) is not
trained or evaluated again.

    python bench/reflective_arms.py --run runs/cpu-small --config configs/cpu-small.yaml
    python bench/reflective_arms.py --run runs/cpu-small --arms per-state per-state-detailed --split test
    python bench/reflective_arms.py --run runs/smoke --config configs/smoke.yaml --n 20 --auc-problems 10   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import accuracy_cell, expert_probe, held_out_args, paired_cell, trained_on

from cot_ray.config import PipelineConfig, load_config
from cot_ray.data.splits import problems
from cot_ray.evaluate import Summary
from cot_ray.layout import RunLayout, is_complete
from cot_ray.tasks import get_task
from cot_ray.verify import verification_counts
from cot_ray.verify.discrimination import Proposal, discrimination, labelled_as, proposals_at


@dataclass(frozen=True, kw_only=True)
class Arm:
    """An arm: where its stage-III data comes from and how it changes the config's stage III."""

    data: str
    """"stored" (the run's own Parquet) or "per-state" (sampled here, labelled for the arm)."""
    changes: dict = field(default_factory=dict)
    variant: str = ""
    """The task whose verification format the arm learns (a variant of the run's task), or ""."""

    def task(self, run_task: str) -> str:
        return self.variant or run_task


ARMS: dict[str, Arm] = {
    "plain": Arm(data="stored", changes={"balance": "positive-cap", "planning_labels": True}),
    "per-state": Arm(data="per-state", changes={"balance": "per-state"}),
    "per-state-detailed": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed"}),
    "per-state-half": Arm(data="per-state", changes={"balance": "per-state", "verification_share": 0.5}),
    "per-state-weighted": Arm(data="per-state", changes={"balance": "per-state", "verification_weight": 200.0}),
    "per-state-restated": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed"},
                              variant="mult-restated"),
    "per-state-recomputed": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed"},
                                variant="mult-recomputed"),
    "per-state-paired": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed"},
                            variant="mult-paired"),
    "restated-half": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed",
                                                    "verification_share": 0.5}, variant="mult-restated"),
    "restated-every-kind": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed",
                                                          "verification_share": 0.5, "corruptions": "every-kind"},
                               variant="mult-restated"),
    "restated-every-kind-4x": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed",
                                                             "verification_share": 0.5, "corruptions": "every-kind",
                                                             "steps": 2000}, variant="mult-restated"),
    "restated-every-kind-90": Arm(data="per-state", changes={"balance": "per-state", "verification": "detailed",
                                                             "verification_share": 0.9, "corruptions": "every-kind"},
                                  variant="mult-restated"),
}


def sample(config: PipelineConfig, run: Path, out: Path, task: str, arms: list[str], split: str,
           difficulties: list[str], auc_problems: int, auc_samples: int
           ) -> tuple[dict[str, Path], dict[str, list[Proposal]]]:
    """On one pool over the stage-II policy: each arm's stage-III data (cached in ``out``) and the
    proposals every verifier is ranked on."""
    from cot_ray.pipeline import reflective_queries
    from cot_ray.rollout.keeper import with_pool
    from cot_ray.train.reflective import sample_steps, verification_records

    r = config.reflective_sft
    paths = {a: (RunLayout(run).reflective_data(task) if ARMS[a].data == "stored"
                 else out / a / f"reflective-{task}.parquet") for a in arms}
    judged_path = out / f"proposals-{split}.jsonl"
    missing = [a for a in arms if not paths[a].exists()]

    def work(pool) -> None:
        if missing:
            per_state = r.model_copy(update={"balance": "per-state"})
            steps = sample_steps(pool, task, reflective_queries(config, task), per_state)
            for a in missing:
                cfg = r.model_copy(update=ARMS[a].changes)
                records = verification_records(ARMS[a].task(task), steps, cfg)
                paths[a].parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist([x.row() for x in records]), paths[a])
                print(f"{a}: {len(records)} verification examples from {len(steps)} sampled steps, "
                      f"{sum(not x.correct for x in records)} wrong, "
                      f"{sum(x.source == 'corruption' for x in records)} of them corruptions", flush=True)
        if not judged_path.exists():
            t = get_task(task)
            temperature = config.eval.execution("rmtp", task).revision_temperature
            lines = [json.dumps({"difficulty": d, **p.__dict__}) for d in difficulties for p in proposals_at(
                pool, t, problems(t, d, auc_problems, config.eval.seed, split, trained_on(config, run, task)),
                auc_samples, temperature,
                config.eval.seed, detailed=True)]
            judged_path.write_text("".join(line + "\n" for line in lines))

    if missing or not judged_path.exists():
        with_pool(config.rollout, RunLayout(run).final("sft"), work)
    judged: dict[str, list[Proposal]] = {}
    for line in judged_path.read_text().splitlines():
        row = json.loads(line)
        judged.setdefault(row.pop("difficulty"), []).append(Proposal(**row))
    return paths, judged


def train(config: PipelineConfig, run: Path, out: Path, arm: str, data: Path) -> Path:
    """The arm's stage III (the run's own, for ``plain``, when it exists)."""
    from cot_ray.train.stages import reflective_dataset, run_stage

    own = RunLayout(run)
    if arm == "plain" and is_complete(own.final("reflective-sft")):
        return own.final("reflective-sft")
    stage_dir = out / arm / "stage3"
    if is_complete(stage_dir / "final"):
        return stage_dir / "final"
    cfg = config.reflective_sft.model_copy(update=ARMS[arm].changes)
    corpora = [str(own.corpus(t)) for t in config.corpus.tasks]
    return run_stage("reflective-sft", cfg, config.model, reflective_dataset(corpora, [str(data)], cfg), stage_dir,
                     init=str(own.final("sft")))


def evaluate(config: PipelineConfig, checkpoint: Path, task: str, arm_task: str, sizes: dict[str, int], split: str,
             modes: list[str], proposals: dict[str, list[Proposal]], detailed: bool, exclude: frozenset[str],
             probe_problems: int) -> dict:
    """Every mode on the same problems per difficulty (outcomes kept for pairing), e+/e-, the
    discrimination of the arm's verifier on the shared proposals and on expert probes (the expert's
    step against one element of each kind wrong, at the states of held-out expert paths). Problems
    are the run's ``task``'s, run in the arm's verification format (``arm_task``)."""
    from cot_ray.rollout.keeper import with_pool
    from cot_ray.verify.scoring import acceptance

    def held_out(d: str, n: int) -> list:
        return [replace(p, task=arm_task) for p in problems(get_task(task), d, n, config.eval.seed, split, exclude)]

    def work(pool) -> dict:
        rows = {}
        for d, n in sizes.items():
            probs = held_out(d, n)
            runs = {m: pool.run(arm_task, probs, config.eval.execution(m, arm_task)) for m in modes}
            row = {m: [t.correct for t in runs[m]] for m in modes}
            row["summary"] = {m: Summary.of(runs[m]).__dict__ for m in modes}
            if "rmtp" in runs:
                first, rev = verification_counts(runs["rmtp"]), verification_counts(runs["rmtp"], revisions=True)
                row["verification"] = {"e+": first.e_plus, "e-": first.e_minus, "revision e+": rev.e_plus,
                                       "revision e-": rev.e_minus, "revisions judged": rev.right + rev.wrong}
            rows[d] = row
        return rows

    rows = with_pool(config.rollout, checkpoint, work)
    for d, props in proposals.items():
        labels = labelled_as(get_task(arm_task), props, detailed)
        rows[d]["discrimination"] = discrimination(labels, acceptance(str(checkpoint), labels)).to_dict()
        rows[d]["probes"] = expert_probe(str(checkpoint), arm_task, held_out(d, probe_problems), detailed)[1]
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(results: dict, arms: list[str], sizes: dict[str, int], modes: list[str], split: str) -> str:
    """The tables the bench prints (markdown)."""
    base = arms[0]
    lines = [f"{split} split; accuracy % [95% Wilson]; differences paired on the same problems [95% interval]",
             "", "| arm | split | within-state AUC | pooled AUC | states | right greedy / right sampled / wrong: "
             "mean acceptance |", "|---|---|---|---|---|---|"]
    for a in arms:
        for split_name in sizes:
            d = results[a][split_name].get("discrimination")
            if d:
                lines.append(f"| {a} | {split_name} | {_pct(d['within_state_auc'])} | {_pct(d['pooled_auc'])} | "
                             f"{d['states']} | {_pct(d['greedy_right_acceptance'])} / "
                             f"{_pct(d['sampled_right_acceptance'])} / {_pct(d['wrong_acceptance'])} |")
    lines += ["", "expert probes: within-state AUC, overall and by the wrong element", ""]
    for a in arms:
        for split_name in sizes:
            pr = results[a][split_name].get("probes")
            if pr:
                kinds = ", ".join(f"{k['kind']} {_pct(k['within_state_auc'])}" for k in pr["kinds"])
                lines.append(f"- {a}, {split_name}: {_pct(pr['within_state_auc'])} at {pr['states']} states ({kinds})")
                if pr.get("at_element"):
                    kinds = ", ".join(f"{k['kind']} {_pct(k['within_state_auc'])}" for k in pr["at_element"])
                    lines.append(f"  - at the wrong element's label: {kinds}")
    head = " | ".join(m.upper() for m in modes)
    lines += ["", f"| arm | split | {head} | e+ / e- | revision e+ / e- | RMTP - MTP | RMTP - {base} RMTP |",
              "|---" * (6 + len(modes)) + "|"]
    for a in arms:
        for d in sizes:
            row, ref = results[a][d], results[base][d]
            v = row.get("verification", {})
            cells = " | ".join(accuracy_cell(row[m]) for m in modes)
            gain = paired_cell(row["rmtp"], row["mtp"]) if "rmtp" in row else "-"
            vs = paired_cell(row["rmtp"], ref["rmtp"]) if "rmtp" in row and a != base else "-"
            lines.append(f"| {a} | {d} | {cells} | {_pct(v.get('e+'))} / {_pct(v.get('e-'))} | "
                         f"{_pct(v.get('revision e+'))} / {_pct(v.get('revision e-'))} | {gain} | {vs} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    held_out_args(p, "stage2-sft/final, data/corpus-<task>.parquet and (for plain) data/reflective-<task>.parquet",
                  "stage III's budget and recipe")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=["plain", "per-state"],
                   help="arms to train and compare; the first is the baseline")
    p.add_argument("--modes", nargs="+", default=["mtp", "rmtp"], choices=["mtp", "rmtp", "rtbs"])
    p.add_argument("--auc-problems", type=int, default=150, help="problems per difficulty whose greedy runs give "
                   "the states the verifiers are ranked at")
    p.add_argument("--auc-samples", type=int, default=8, help="proposals sampled per state (besides the greedy one)")
    p.add_argument("--probe-problems", type=int, default=100, help="held-out problems per difficulty whose expert "
                   "paths give the expert probes (bench/verifier_probe.py)")
    p.add_argument("--out", default=None, help="default: <run>/bench-reflective-arms")
    args = p.parse_args()
    if len(set(args.arms)) != len(args.arms) or len(args.arms) < 2:
        p.error("--arms: name at least two different arms")
    if "mtp" not in args.modes:
        p.error("--modes: mtp is the reference every difference is taken against")
    sizes = dict(args.n)

    run, config = Path(args.run).resolve(), load_config(args.config)
    task = config.corpus.tasks[0]
    out = Path(args.out or run / "bench-reflective-arms").resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    paths, proposals = sample(config, run, out, task, args.arms, args.split, list(sizes), args.auc_problems,
                              args.auc_samples)
    print(f"sampled in {time.time() - t0:.0f}s; proposals to rank: "
          f"{ {d: len(ps) for d, ps in proposals.items()} }", flush=True)
    saved = out / f"results-{args.split}.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results = {a: r for a, r in results.items() if {d: len(r[d]["mtp"]) for d in sizes} == sizes}
    seconds = {}
    for arm in args.arms:
        t0 = time.time()
        if arm in results:  # measured on these problems by an earlier invocation
            seconds[arm] = float("nan")
            continue
        final = train(config, run, out, arm, paths[arm])
        detailed = config.reflective_sft.model_copy(update=ARMS[arm].changes).verification != "binary"
        results[arm] = evaluate(config, final, task, ARMS[arm].task(task), sizes, args.split, args.modes, proposals,
                                detailed, trained_on(config, run, task), args.probe_problems)
        seconds[arm] = time.time() - t0
        auc = {d: _pct(r.get("discrimination", {}).get("within_state_auc")) for d, r in results[arm].items()}
        print(f"{arm}: trained and evaluated in {seconds[arm]:.0f}s; within-state AUC {auc}", flush=True)
        saved.write_text(json.dumps(results))
    print("\n" + report(results, args.arms, sizes, args.modes, args.split))
    base, *others = args.arms
    timed = [arm for arm in others if not math.isnan(seconds[arm])]  # NaN: measured by an earlier invocation
    if not math.isnan(seconds[base]) and timed:
        print("\n" + ", ".join(f"time ratio {arm}/{base}: {seconds[arm] / seconds[base]:.2f}" for arm in timed))


if __name__ == "__main__":
    main()
