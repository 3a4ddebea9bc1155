"""The main job: every stage of a run, in order, into one run folder, resuming finished stages.

Stages so far: the CoT corpus (Parquet, generated on Ray) and an evaluation of the expert and
noisy-expert policies through MTP, RMTP and RTBS, with a markdown report and a plot. Training
stages I-IV plug in here as they land. A stage whose outputs exist is skipped on re-run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from cot_ray.config import PipelineConfig
from cot_ray.data.corpus import generate_corpus
from cot_ray.evaluate import Summary, evaluate, make_problems, record, write_jsonl
from cot_ray.mtp import ExecutionConfig, ExpertPolicy
from cot_ray.tasks import get_task

log = logging.getLogger(__name__)


def run_pipeline(config: PipelineConfig, out: str | Path, progress: bool = True) -> Path:
    """Run all stages into ``out``; returns the path of the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    t0 = time.time()
    corpus_stage(config, out, progress)
    summaries = eval_stage(config, out, progress)
    report = write_report(config, summaries, out)
    log.info("pipeline finished in %.1fs; report: %s", time.time() - t0, report)
    return report


def corpus_stage(config: PipelineConfig, out: Path, progress: bool) -> None:
    c = config.corpus
    for task in c.tasks:
        path = out / "data" / f"corpus-{task}.parquet"
        if path.exists():
            log.info("corpus %s: %s exists, skipped", task, path)
            continue
        t0 = time.time()
        table = generate_corpus(task, c.n, str(path), seed=c.seed, difficulty=c.difficulty,
                                shard_size=c.shard_size, progress=progress)
        log.info("corpus %s: %d rows in %.1fs -> %s", task, table.num_rows, time.time() - t0, path)


def _policies(config: PipelineConfig) -> dict[str, dict]:
    named = {"expert": {}}
    for noise in config.eval.noise:
        named[f"noisy(mu={1 - noise.step_error:.2f},e+={noise.false_positive},e-={noise.false_negative})"] = (
            noise.model_dump())
    return named


def eval_stage(config: PipelineConfig, out: Path, progress: bool) -> list[dict]:
    """Accuracy of each policy x task x difficulty x mode; cached in ``eval/summary.json``."""
    cache = out / "eval" / "summary.json"
    if cache.exists():
        log.info("eval: %s exists, skipped", cache)
        return json.loads(cache.read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    e = config.eval
    rows = []
    for task_name in config.corpus.tasks:
        task = get_task(task_name)
        for difficulty in e.difficulties:
            problems = make_problems(task, difficulty, e.n, e.seed)
            for k, (policy_name, noise) in enumerate(_policies(config).items()):
                policy = ExpertPolicy(task, **noise)
                for mode in e.modes:
                    trajs = evaluate(task, policy, problems, ExecutionConfig(mode=mode, seed=e.seed),
                                     progress=progress)
                    summary = Summary.of(trajs)
                    tag = f"{task_name}-{difficulty}-{mode}-policy{k}"
                    write_jsonl(str(cache.parent / f"{tag}.jsonl"), (record(t) for t in trajs))
                    log.info("%s %s %s %s: %s", policy_name, task_name, difficulty, mode, summary.line())
                    rows.append({"policy": policy_name, "task": task_name, "difficulty": difficulty,
                                 "mode": mode, **summary.__dict__})
    cache.write_text(json.dumps(rows, indent=2))
    return rows


def write_report(config: PipelineConfig, rows: list[dict], out: Path) -> Path:
    """``report.md`` (accuracy tables, laid out like the paper's) and ``accuracy.png``."""
    modes = config.eval.modes
    lines = [f"# cot_ray report: {config.name}", "",
             "Accuracy (%) per task and difficulty, for each execution mode; reflection = share of",
             "steps that carry a verification; rejected = share of steps rejected by the policy.", ""]
    for policy in dict.fromkeys(r["policy"] for r in rows):
        lines += [f"## {policy}", "",
                  "| task | split | " + " | ".join(m.upper() for m in modes) + " | reflection | rejected |",
                  "|---|---|" + "---|" * (len(modes) + 2)]
        for task in config.corpus.tasks:
            for difficulty in config.eval.difficulties:
                cells = {r["mode"]: r for r in rows
                         if (r["policy"], r["task"], r["difficulty"]) == (policy, task, difficulty)}
                if not cells:
                    continue
                refl = cells.get("rmtp") or next(iter(cells.values()))
                lines.append(f"| {task} | {difficulty} | "
                             + " | ".join(f"{100 * cells[m]['accuracy']:.1f}" for m in modes if m in cells)
                             + f" | {100 * refl['reflection_frequency']:.1f} | {100 * refl['rejection_rate']:.1f} |")
        lines.append("")
    lines += ["![accuracy](accuracy.png)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    _plot(rows, modes, out / "accuracy.png")
    return report


def _plot(rows: list[dict], modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["policy"].split("(")[0], r["task"], r["difficulty"]) for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 0.9), 4))
    width = 0.8 / max(len(modes), 1)
    for k, mode in enumerate(modes):
        acc = [next((100 * r["accuracy"] for r in rows
                     if (r["policy"].split("(")[0], r["task"], r["difficulty"], r["mode"]) == (*g, mode)), 0.0)
               for g in groups]
        ax.bar([i + k * width for i in range(len(groups))], acc, width, label=mode.upper())
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels(["\n".join(g) for g in groups], fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
