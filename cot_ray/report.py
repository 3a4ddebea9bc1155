"""The run report: ``report.md`` with ``accuracy.png`` and ``heatmap.png``.

Accuracies carry 95% Wilson intervals and comparisons say when a gap is inside the noise, so a
few-hundred-problem evaluation is not over-read; the failure tables and the digit heat map show
where the chains break, which accuracy alone hides. Per-problem detail comes from the eval JSONLs
(``out/eval/<policy>-<task>-<difficulty>-<mode>.jsonl``); a missing file or field only drops its
part of the report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from cot_ray.atomic import write_text
from cot_ray.config import PipelineConfig
from cot_ray.layout import RL_RUNS, STAGES, RunLayout
from cot_ray.mtp.execute import MODES
from cot_ray.plots import plot_accuracy, plot_heatmap, plot_rl
from cot_ray.profile import Profile
from cot_ray.stats import counts, verdict, wilson
from cot_ray.tasks import TaskFamily, family_of

PAPER_TABLE5: dict[tuple[str, TaskFamily], dict[str, tuple[float, ...]]] = {
    # paper Table 5 (after SFT), by model size and task family: MTP model, then binary verification None / RMTP / RTBS
    ("1M", "mult"): {"id-easy": (23.6, 95.8, 94.5, 93.4), "id-hard": (2.0, 52.7, 44.6, 35.5),
                     "ood-hard": (1.0, 3.7, 2.2, 1.2)},
    ("4M", "mult"): {"id-easy": (92.0, 97.7, 97.6, 97.3), "id-hard": (37.3, 56.9, 62.2, 53.0),
                     "ood-hard": (2.2, 2.9, 1.8, 1.1)},
    ("16M", "mult"): {"id-easy": (99.2, 98.8, 98.9, 98.8), "id-hard": (65.9, 65.2, 76.7, 74.9),
                      "ood-hard": (2.5, 1.1, 1.3, 1.3)},
    ("1M", "sudoku"): {"id-easy": (1.4, 33.0, 32.4, 2.4), "id-hard": (0.0, 0.3, 0.1, 0.0),
                       "ood-hard": (0.0, 0.0, 0.0, 0.0)},
    ("4M", "sudoku"): {"id-easy": (52.2, 92.1, 96.8, 96.0), "id-hard": (3.3, 40.9, 46.3, 53.3),
                       "ood-hard": (0.0, 0.4, 4.0, 6.7)},
    ("16M", "sudoku"): {"id-easy": (95.7, 97.1, 97.9, 92.5), "id-hard": (48.8, 50.1, 53.1, 54.8),
                        "ood-hard": (0.4, 0.9, 4.4, 6.0)},
}

_SFT, _S3, _CONTROL, _RL_MTP, _RL_RMTP = (STAGES[s] for s in ("sft", "reflective-sft", "control", "rl-mtp", "rl-rmtp"))
COMPARISONS: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...] = (
    ("stage III vs stage II, MTP", (_S3, "mtp"), (_SFT, "mtp")),
    ("effect of learning to verify: stage III vs its planning-only control, MTP", (_S3, "mtp"), (_CONTROL, "mtp")),
    ("stage III: RMTP vs MTP", (_S3, "rmtp"), (_S3, "mtp")),
    ("stage III: RTBS vs MTP", (_S3, "rtbs"), (_S3, "mtp")),
    ("RL-MTP vs stage II, MTP", (_RL_MTP, "mtp"), (_SFT, "mtp")),
    *((f"RL-RMTP vs stage III, {m.upper()}", (_RL_RMTP, m), (_S3, m)) for m in MODES),
)
"""(label, (policy, mode) of the first run, (policy, mode) of the second); reported as first - second."""

HEATMAP_POLICIES = (_RL_RMTP, _S3, _SFT)
"""The heat map shows the first of these with multiplication records: the most trained policy."""

NO_ERROR = "none"
"""Failure kind of a failing problem whose accepted steps were all right (e.g. the budget ran out)."""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def accuracy_cell(row: dict) -> str:
    """Accuracy with its 95% Wilson interval, in percent: ``95.5 [93.1, 97.1]``."""
    k, n = counts(row)
    low, high = wilson(k, n)
    return f"{100 * k / max(n, 1):.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def read_records(path: Path) -> list[dict]:
    """The records of an eval JSONL; [] when it is missing or unreadable (the report skips it)."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def failure_breakdown(records: list[dict]) -> Counter[str] | None:
    """Failing problems per kind of their first wrong element; None if the records predate
    ``first_error``."""
    if not records or any("first_error" not in r for r in records):
        return None
    return Counter(r["first_error"] or NO_ERROR for r in records if not r.get("correct"))


def digit_grid(records: Iterable[dict]) -> dict[tuple[int, int], tuple[int, int]]:
    """(digits of x, digits of y) -> (correct, n) over the records whose question has integer x, y."""
    grid: dict[tuple[int, int], tuple[int, int]] = {}
    for r in records:
        try:
            q = json.loads(r["question"])
        except (KeyError, TypeError, ValueError):
            continue
        x, y = (q.get("x"), q.get("y")) if isinstance(q, dict) else (None, None)
        if not isinstance(x, int) or not isinstance(y, int):
            continue
        key = (len(str(abs(x))), len(str(abs(y))))
        k, n = grid.get(key, (0, 0))
        grid[key] = (k + bool(r.get("correct")), n + 1)
    return grid


def _trained(policy: str) -> bool:
    return policy != "expert" and not policy.startswith("noisy(")


def _accuracy_tables(rows: list[dict], modes: list[str], tasks: list[str], difficulties: list[str]) -> list[str]:
    lines = []
    for policy in dict.fromkeys(r["policy"] for r in rows):
        lines += [f"## {policy}", "",
                  "| task | split | " + " | ".join(m.upper() for m in modes) + " | reflection | rejected | e+ | e- |",
                  "|---|---|" + "---|" * (len(modes) + 4)]
        for task in tasks:
            for difficulty in difficulties:
                cells = {r["mode"]: r for r in rows
                         if (r["policy"], r["task"], r["difficulty"]) == (policy, task, difficulty)}
                if not cells:
                    continue
                refl = cells.get("rmtp") or next(iter(cells.values()))
                lines.append(f"| {task} | {difficulty} | "
                             + " | ".join(accuracy_cell(cells[m]) if m in cells else "-" for m in modes)
                             + f" | {_pct(refl['reflection_frequency'])} | {_pct(refl['rejection_rate'])}"
                             + f" | {_pct(refl.get('e_plus'))} | {_pct(refl.get('e_minus'))} |")
        lines.append("")
    return lines


def _comparisons(rows: list[dict], tasks: list[str], difficulties: list[str]) -> list[str]:
    index = {(r["policy"], r["task"], r["difficulty"], r["mode"]): r for r in rows}
    table = []
    for task in tasks:
        for difficulty in difficulties:
            for label, (p1, m1), (p2, m2) in COMPARISONS:
                first, second = index.get((p1, task, difficulty, m1)), index.get((p2, task, difficulty, m2))
                if first and second:
                    table.append(f"| {task} | {difficulty} | {label} | {verdict(*counts(first), *counts(second))} |")
    if not table:
        return []
    return ["## Comparisons", "",
            "Accuracy difference, first minus second, in percentage points with its 95% interval (Newcombe's",
            "hybrid score interval). Both runs see the same problems; the interval treats them as independent",
            "samples, so it errs wide.", "",
            "| task | split | comparison | difference |", "|---|---|---|---|", *table, ""]


def _failures(out: Path, rows: list[dict], tasks: list[str], difficulties: list[str]) -> list[str]:
    policies = [p for p in dict.fromkeys(r["policy"] for r in rows) if _trained(p)]
    lines = []
    for task in tasks:
        found = []
        for policy in policies:
            for difficulty in difficulties:
                records = read_records(RunLayout(out).eval_records(policy, task, difficulty, "mtp"))
                kinds = failure_breakdown(records)
                if kinds is not None:
                    found.append((policy, difficulty, len(records), kinds))
        if not found:
            continue
        columns = [k for k, _ in sum((kinds for *_, kinds in found), Counter()).most_common()]
        lines += [f"### {task}", "", "| policy | split | failing | " + " | ".join(columns) + " |",
                  "|---|---|---|" + "---|" * len(columns)]
        for policy, difficulty, n, kinds in found:
            failing = kinds.total()
            shares = (f"{100 * kinds[k] / failing:.1f}" if kinds[k] else "-" for k in columns)
            lines.append(f"| {policy} | {difficulty} | {failing} / {n} | " + " | ".join(shares) + " |")
        lines.append("")
    if not lines:
        return []
    return ["## Where steps fail", "",
            "MTP runs of the trained policies: failing problems, and the share (%) of them by the kind of",
            "the first wrong element of their first wrong accepted step "
            f"({NO_ERROR}: no accepted step was wrong, e.g. the step budget ran out).", "", *lines]


def _reflection(rows: list[dict]) -> list[str]:
    """The Theorem-1 quantities beside measured RMTP accuracy (rows that carry diagnostics)."""
    table, by_kind = [], []
    for r in rows:
        if r["mode"] != "rmtp" or "mu" not in r:
            continue
        pair = " / ".join
        auc = r.get("discrimination") or {}
        cells = [r["policy"], r["task"], r["difficulty"], _pct(r["mu"]),
                 pair([_pct(auc.get("within_state_auc")), _pct(auc.get("pooled_auc"))]) + f" ({auc.get('states', 0)})",
                 pair([_pct(r.get("e_plus")), _pct(r.get("e_minus"))]),
                 pair([_pct(r.get("e_plus_revision")), _pct(r.get("e_minus_revision"))]),
                 _pct(r["rejection_rate"]),
                 pair(_pct(r.get(f"pass@{k}")) for k in (1, 4, 16)) + f" ({r.get('wrong_greedy_states', 0)})",
                 _pct(r.get("theorem1_rmtp")), accuracy_cell(r)]
        table.append("| " + " | ".join(cells) + " |")
        kinds = ", ".join(f"{k['kind']} {_pct(k['within_state_auc'])} ({k['pairs']})" for k in auc.get("by_kind", []))
        if kinds:
            by_kind.append(f"- {r['policy']}, {r['task']} {r['difficulty']}: {kinds}")
        at = ", ".join(f"{k['kind']} {_pct(k['within_state_auc'])}" for k in auc.get("at_element", []))
        if at:
            by_kind.append(f"  - at the wrong element's own label: {at}")
    if not table:
        return []
    return ["## Why reflection helps or not", "",
            "mu: share of right greedy steps (MTP runs, up to each run's first wrong step). e+ / e-: the",
            "policy's false-positive / false-negative rate in RMTP, on first attempts and on revision samples",
            "(after a rejection). pass@1/4/16: at states where the greedy step was wrong (how many in",
            "brackets), how often 1, 4 or 16 samples at the revision temperature hold a right step.",
            "Theorem 1: RMTP accuracy predicted from mu, e+ and e- (first attempts) with unlimited retries,",
            "averaged over the problems' expert step counts; beside it, the measured RMTP accuracy.",
            "AUC: at states holding right and wrong proposals of the policy (how many in brackets), the chance",
            "that its own teacher-forced acceptance ranks a right proposal above a wrong one at the same state",
            "(within; 0.5 = it judges the state, 1 = it checks the step), and over all states (pooled).", "",
            "| policy | task | split | mu | AUC within / pooled | e+ / e- first | e+ / e- revision | rejected |"
            " pass@1/4/16 | Theorem 1 RMTP | measured RMTP |",
            "|---|---|---|---|---|---|---|---|---|---|---|", *table, "",
            *(["Within-state AUC by the wrong proposal's first wrong element (its pairs in brackets): which",
               "elements the verifier checks; with detailed labels also at that element's own label (P(✓) there",
               "against the same label of a right step: 0.5 = the label sits at its position's prior).", "",
               *by_kind, ""] if by_kind else [])]


def _paired(rows: list[dict]) -> list[str]:
    """Each reflective mode against MTP of the same checkpoint, on the same problems (paired)."""
    table = [f"| {r['policy']} | {r['task']} | {r['difficulty']} | {r['mode'].upper()} - MTP | "
             f"{_signed(r['vs_mtp'])} |" for r in rows if r.get("vs_mtp")]
    if not table:
        return []
    return ["## Reflection against no reflection, paired", "",
            "Accuracy of a reflective mode minus MTP of the same checkpoint, in percentage points, on the same",
            "problems, with the 95% interval for paired outcomes (Newcombe 1998, method 10); an interval that",
            "holds 0 is no difference.", "",
            "| policy | task | split | comparison | difference |", "|---|---|---|---|---|", *table, ""]


def _signed(d: dict) -> str:
    text = f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return text + " (no difference)" if d["low"] <= 0 <= d["high"] else text


def _share(rejected_judged: list[int], accepted: bool) -> str:
    """``12.5 (40)``: the share (%) of judged steps accepted (or rejected), and how many were judged."""
    rejected, judged = rejected_judged
    return "-" if not judged else f"{100 * ((judged - rejected) if accepted else rejected) / judged:.1f} ({judged})"


def _by_truth(rows: list[dict]) -> list[str]:
    """The policy's own verification split by what the steps really were, and RTBS backtracking."""
    table = []
    for r in rows:
        truth = r.get("by_truth")
        if r["mode"] == "mtp" or not truth or not sum(n for _, n in truth.values()):
            continue
        backtracked = f"{r['backtracked']} / {r['n']}" if r["mode"] == "rtbs" and "backtracked" in r else "-"
        table.append(f"| {r['policy']} | {r['task']} | {r['difficulty']} | {r['mode'].upper()} | "
                     f"{_share(truth['broken'], True)} | {_share(truth['wrong-guess'], True)} | "
                     f"{_share(truth['sound'], False)} | {backtracked} |")
    if not table:
        return []
    return ["## What the policy's verification catches", "",
            "First attempts at each state, by what the step really was: **broken** (the expert verifier",
            "flags an element: e+ on these is the share accepted), **wrong guess** (breaks no rule, so the",
            "rule-based verifier passes it, but the board has no solution: Sudoku only; a binary check cannot",
            "see these, RTBS can find them by backtracking) and **sound** (e-: the share rejected). In brackets:",
            "steps judged. backtracked: RTBS runs that went back to an earlier state at least once.", "",
            "| policy | task | split | mode | broken: accepted | wrong guess: accepted | sound: rejected |"
            " backtracked |",
            "|---|---|---|---|---|---|---|---|", *table, ""]


RL_CURVES = ("reward", "accuracy", "reflection", "e_plus", "e_minus", "flat_groups")
"""Per-update columns of an RL run's metrics.csv that the report plots (when present)."""


def rl_curves(out: Path) -> dict[str, dict[str, list[float]]]:
    """run -> column -> values per update, for the RL runs that wrote a metrics.csv."""
    import csv

    curves = {}
    for rl in RL_RUNS:
        try:
            with open(RunLayout(out).metrics(rl.stage), newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            continue
        curves[rl.name] = {c: [float(r[c]) if r.get(c) not in (None, "", "None") else float("nan") for r in rows]
                       for c in RL_CURVES if rows and c in rows[0]}
    return {run: c for run, c in curves.items() if c}


def _rl_section(out: Path) -> list[str]:
    curves = rl_curves(out)
    if not curves:
        return []
    plot_rl(curves, RL_CURVES, RunLayout(out).figure("rl"))
    lines = ["## Stage IV, update by update", "",
             "From each RL run's metrics.csv (its training queries, sampled at the RL temperatures): reward,",
             "accuracy, reflection frequency, e+ / e- of the policy's own verification, and the share of GRPO",
             "groups whose rewards were all equal (dropped and resampled). First and last update:", "",
             "| run | " + " | ".join(RL_CURVES) + " |", "|---|" + "---|" * len(RL_CURVES)]
    for run, c in curves.items():
        lines.append(f"| {run} | " + " | ".join(
            f"{_num(c[k][0])} -> {_num(c[k][-1])}" if k in c else "-" for k in RL_CURVES) + " |")
    return lines + ["", "![rl](rl.png)", ""]


def _num(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"  # NaN: the metric was undefined at that update


def heatmap_records(out: Path, rows: list[dict]) -> tuple[str, list[dict]] | None:
    """The most trained policy's MTP multiplication records (every task of the ``mult`` family,
    whatever its layout), all evaluated splits pooled. Only multiplication has a heat map: its
    cells are operand lengths, which a Sudoku has no counterpart of."""
    for policy in HEATMAP_POLICIES:
        runs = [(r["task"], r["difficulty"]) for r in rows
                if (r["policy"], r["mode"]) == (policy, "mtp") and family_of(r["task"]) == "mult"]
        records = [rec for task, d in runs for rec in read_records(RunLayout(out).eval_records(policy, task, d, "mtp"))]
        if records:
            return policy, records
    return None


def write_report(config: PipelineConfig, rows: list[dict], out: Path) -> Path:
    """``report.md`` (accuracy tables laid out like the paper's, comparisons, failure analysis),
    ``accuracy.png`` and, with multiplication, ``heatmap.png``."""
    modes, tasks, difficulties = list(config.eval.modes), config.corpus.tasks, config.eval.difficulties
    run = RunLayout(out)
    lines = [f"# cot_ray report: {config.name}", "",
             f"Model {config.model.size}; accuracy (%) per task and difficulty for each execution mode, with its",
             "95% Wilson interval in brackets. reflection = share of steps that carry a verification; rejected",
             "= share of steps the policy rejected; e+ / e- = the policy's false-positive / false-negative rate",
             "against the expert verifier (first attempt at each state, RMTP run). Expert rows are the",
             "rule-based baselines.", ""]
    lines += _accuracy_tables(rows, modes, tasks, difficulties)
    lines += _comparisons(rows, tasks, difficulties)
    lines += _paired(rows)
    lines += _reflection(rows)
    lines += _by_truth(rows)
    lines += _failures(out, rows, tasks, difficulties)
    lines += _rl_section(out)
    heat = heatmap_records(out, rows)
    grid = digit_grid(heat[1]) if heat else {}
    if heat and grid:
        plot_heatmap(grid, f"{heat[0]}, MTP: accuracy (%) by operand length", run.figure("heatmap"))
        lines += ["## Multiplication by operand length", "",
                  f"{heat[0]}, MTP, all evaluated splits pooled; each cell: accuracy and number of problems.", "",
                  "![heatmap](heatmap.png)", ""]
    families = dict.fromkeys(family_of(task) for task in tasks)  # the paper reports a family, any layout
    paper = [(family, PAPER_TABLE5[(config.model.size, family)]) for family in families
             if (config.model.size, family) in PAPER_TABLE5]
    if paper:
        lines += [f"## The paper, {config.model.size} (Table 5, after SFT; trained on ID-Easy and ID-Hard)", "",
                  "| task | split | MTP model: MTP | binary-verifying model: MTP | RMTP | RTBS |",
                  "|---|---|---|---|---|---|"]
        for family, table in paper:
            for difficulty, values in table.items():
                lines.append(f"| {family} | {difficulty} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
        lines.append("")
    lines += Profile.load(run.profile).markdown()
    lines += ["![accuracy](accuracy.png)", ""]
    plot_accuracy(rows, modes, run.figure("accuracy"))
    return write_text(run.report, "\n".join(lines))
