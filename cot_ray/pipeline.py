"""The main job: every stage of a run, in order, into one run folder, resuming finished stages.

    data/corpus-<task>.parquet        stage-I/II data (expert CoTs)
    stage1-pretrain/final             HF checkpoints (also checkpoints/step-N while training)
    stage2-sft/final
    data/reflective-<task>.parquet    stage-III data: sampled steps + expert verifications
    stage3-reflective-sft/final
    stage3-control/final              planning only, as many planning examples as stage III (a control)
    stage4-rl-mtp/final, stage4-rl-rmtp/final   RL-tuned policies (GRPO or PPO), metrics.csv
    eval/<name>.json(l)               evaluations of each checkpoint (and of the expert baselines)
    report.md, accuracy.png, heatmap.png   the report
    pipeline.log                      everything the run logged

:func:`plan` lists the stages, each with the paths it reads and writes; :func:`run_pipeline`
runs them top to bottom. A stage whose outputs exist is skipped on re-run; a training stage that
was interrupted resumes from its latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cot_ray.config import PipelineConfig, TrainConfig
from cot_ray.data.corpus import generate_corpus
from cot_ray.data.splits import held_out_of, make_problem
from cot_ray.evaluate import Summary, evaluate, make_problems, record, write_jsonl
from cot_ray.mtp import ExpertPolicy, Trajectory
from cot_ray.report import write_report
from cot_ray.stats import paired_interval
from cot_ray.tasks import Problem, get_task
from cot_ray.verify.diagnostics import reflection_diagnostics

log = logging.getLogger(__name__)

STAGE_DIRS = {"pretrain": "stage1-pretrain", "sft": "stage2-sft", "reflective-sft": "stage3-reflective-sft"}
CONTROL_DIR = "stage3-control"
"""Stage III's planning-only control (see :func:`control_stage`)."""
RL_RUNS: tuple[tuple[str, str, str, list[str] | None], ...] = (
    ("stage4-rl-mtp", "sft", "mtp", ["mtp"]),  # the MTP policy through the MTP
    ("stage4-rl-rmtp", "reflective-sft", "rmtp", None),  # the self-verifying policy through the RMTP: every mode
)
"""Stage IV's runs: (folder, the stage they start from, RL execution mode, evaluated modes)."""
EVALS = ("experts", STAGE_DIRS["sft"], STAGE_DIRS["reflective-sft"], CONTROL_DIR, *(r[0] for r in RL_RUNS))
"""The evaluations the report reads, in its order (``eval/<name>.json``)."""


@dataclass(frozen=True)
class Stage:
    """One step of a run: the paths it reads and writes (inside the run folder) and how it runs.
    It is done when every output exists (a model folder counts once its weights are written)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[[], object]

    def done(self, out: Path) -> bool:
        return all(_exists(out / o) for o in self.outputs)


def _exists(path: Path) -> bool:
    return (path / "model.safetensors").exists() if path.name == "final" else path.exists()


def plan(config: PipelineConfig, out: Path, progress: bool = True) -> list[Stage]:
    """Every stage of a run, in order (the module docstring lists the paths)."""
    tasks = config.corpus.tasks
    corpora = tuple(f"data/corpus-{t}.parquet" for t in tasks)
    reflective = tuple(f"data/reflective-{t}.parquet" for t in tasks)
    paths = [str(out / c) for c in corpora]
    pre, sft, s3 = (f"{STAGE_DIRS[k]}/final" for k in ("pretrain", "sft", "reflective-sft"))
    modes = list(config.eval.modes)
    stages = [
        Stage("corpus", (), corpora, lambda: corpus_stage(config, out, progress)),
        Stage("expert baselines", (), ("eval/experts.json",), lambda: expert_eval_stage(config, out, progress)),
        Stage("stage I: pretraining", corpora, (pre,), lambda: train_stage("pretrain", config, out, paths, progress)),
        Stage("stage II: SFT", (pre,), (sft,), lambda: train_stage("sft", config, out, paths, progress)),
        Stage("stage II eval + stage-III sampling (one pool)", (sft,), ("eval/stage2-sft.json", *reflective),
              lambda: sft_pool_stage(config, out)),
        Stage("stage III: reflective SFT", (sft, *reflective), (s3,),
              lambda: train_stage("reflective-sft", config, out, paths, progress)),
        Stage("stage III eval", (s3,), ("eval/stage3-reflective-sft.json",),
              lambda: eval_stage(config, out, STAGE_DIRS["reflective-sft"], modes)),
    ]
    if config.reflective_sft.control:
        stages += [
            Stage("stage III control: planning only", (sft, *reflective), (f"{CONTROL_DIR}/final",),
                  lambda: control_stage(config, out, paths, progress)),
            Stage("stage III control eval", (f"{CONTROL_DIR}/final",), (f"eval/{CONTROL_DIR}.json",),
                  lambda: eval_stage(config, out, CONTROL_DIR, ["mtp"])),
        ]
    for name, init, mode, rl_modes in RL_RUNS:
        if mode not in config.rl.runs:
            continue
        rl_modes = rl_modes or modes
        stages.append(Stage(f"stage IV: RL through the {mode.upper()}", (f"{STAGE_DIRS[init]}/final",),
                            (f"{name}/final", f"eval/{name}.json"),
                            lambda name=name, init=init, mode=mode, m=rl_modes: rl_stage(
                                config, out, name, STAGE_DIRS[init], mode, m, progress)))
    return stages


def run_pipeline(config: PipelineConfig, out: str | Path, progress: bool = True) -> Path:
    """Run every stage of :func:`plan` that is not done into ``out``; returns the report's path."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    t0 = time.time()
    for stage in plan(config, out, progress):
        if stage.done(out):
            log.info("%s: done (%s), skipped", stage.name, ", ".join(stage.outputs))
            continue
        absent = [i for i in stage.inputs if not _exists(out / i)]
        if absent:
            raise RuntimeError(f"{stage.name} needs {', '.join(absent)}, which no earlier stage wrote")
        t_stage = time.time()
        stage.run()
        log.info("%s: finished in %.0fs", stage.name, time.time() - t_stage)
    rows = [row for name in EVALS if (out / "eval" / f"{name}.json").exists()
            for row in json.loads((out / "eval" / f"{name}.json").read_text())]
    report = write_report(config, rows, out)
    log.info("pipeline finished in %.1fs; report: %s", time.time() - t0, report)
    return report


def corpus_stage(config: PipelineConfig, out: Path, progress: bool) -> list[str]:
    c = config.corpus
    paths = []
    for task in c.tasks:
        path = out / "data" / f"corpus-{task}.parquet"
        paths.append(str(path))
        if path.exists():
            log.info("corpus %s: %s exists, skipped", task, path)
            continue
        t0 = time.time()
        table = generate_corpus(task, c.n, str(path), seed=c.seed, difficulty=c.difficulty,
                                shard_size=c.shard_size, progress=progress, exclude=held_out_of(config, task))
        log.info("corpus %s: %d rows in %.1fs -> %s", task, table.num_rows, time.time() - t0, path)
    return paths


def _cached(path: Path, compute) -> list[dict]:
    if path.exists():
        log.info("%s exists, skipped", path)
        return json.loads(path.read_text())
    rows = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2))
    return rows


def _summary_row(policy: str, task: str, difficulty: str, mode: str, trajs: list[Trajectory], out: Path) -> dict:
    tag = f"{policy}-{task}-{difficulty}-{mode}".replace("/", "_")
    (out / "eval").mkdir(parents=True, exist_ok=True)
    spec = get_task(task)
    write_jsonl(str(out / "eval" / f"{tag}.jsonl"), (record(t, spec) for t in trajs))
    from cot_ray.verify import rejections_by_truth, verification_counts

    summary = Summary.of(trajs)
    counts = verification_counts(trajs)
    log.info("eval %s %s %s %s: %s e+=%s e-=%s", policy, task, difficulty, mode, summary.line(), counts.e_plus,
             counts.e_minus)
    return {"policy": policy, "task": task, "difficulty": difficulty, "mode": mode, **summary.__dict__,
            "e_plus": counts.e_plus, "e_minus": counts.e_minus, "by_truth": rejections_by_truth(spec, trajs)}


def expert_eval_stage(config: PipelineConfig, out: Path, progress: bool) -> list[dict]:
    """Baselines: the expert and noisy experts through MTP, RMTP and RTBS."""
    def compute() -> list[dict]:
        e, rows = config.eval, []
        policies = {"expert": {}} | {
            f"noisy(mu={1 - n.step_error:.2f},e+={n.false_positive},e-={n.false_negative})": n.model_dump()
            for n in e.noise}
        for task_name in config.corpus.tasks:
            task = get_task(task_name)
            for difficulty in e.difficulties:
                problems = make_problems(task, difficulty, e.n, e.seed)
                for name, noise in policies.items():
                    for mode in e.modes:
                        trajs = evaluate(task, ExpertPolicy(task, **noise), problems[:e.noise_n] if noise else problems,
                                         e.execution(mode, task_name), progress=progress)
                        rows.append(_summary_row(name, task_name, difficulty, mode, trajs, out))
        return rows

    return _cached(out / "eval" / "experts.json", compute)


def sft_pool_stage(config: PipelineConfig, out: Path) -> None:
    """The stage-II policy's rollout pool both evaluates it and samples the stage-III data (one
    engine start instead of two)."""
    sft_eval = out / "eval" / "stage2-sft.json"

    def both(pool) -> None:
        _cached(sft_eval, lambda: eval_checkpoint(config, pool, STAGE_DIRS["sft"], ["mtp"], out))
        for task, path in _missing_reflective_data(config, out):
            _sample_reflective(config, pool, task, path)

    with_pool(config, out / STAGE_DIRS["sft"] / "final", both)


def eval_stage(config: PipelineConfig, out: Path, name: str, modes: list[str]) -> list[dict]:
    """Evaluate the checkpoint ``out/<name>/final`` into ``eval/<name>.json``."""
    return _cached(out / "eval" / f"{name}.json", lambda: with_pool(
        config, out / name / "final", lambda pool: eval_checkpoint(config, pool, name, modes, out)))


def control_stage(config: PipelineConfig, out: Path, corpora: list[str], progress: bool = True) -> Path:
    """Stage III's control: planning only, to isolate the effect of learning to verify.

    It starts from the stage-II policy, like stage III, and trains on the same expert planning
    examples stage III mixes in, as many of them as stage III saw (its steps times the planning
    share of its mixture), with no verification examples. Stage-III MTP accuracy minus the
    control's is then the effect of learning to verify, not of more planning SFT.
    """
    from cot_ray.train.stages import corpus_dataset, run_stage, stage_done

    stage_dir = out / CONTROL_DIR
    if stage_done(stage_dir):
        log.info("control: %s exists, skipped", stage_dir / "final")
        return stage_dir / "final"
    from cot_ray.train.stages import mixture_of

    r = config.reflective_sft
    mix = mixture_of(corpora, [str(out / "data" / f"reflective-{t}.parquet") for t in config.corpus.tasks], r)
    steps = r.steps or math.ceil((r.epochs or 1.0) * (mix.planning + mix.verification) / r.batch_size)
    planning_steps = max(1, round(steps * mix.planning_share))
    log.info("control: %d planning steps (stage III: %d steps, %.0f%% of its examples planning)",
             planning_steps, steps, 100 * mix.planning_share)
    cfg = TrainConfig.model_validate({**r.model_dump(include=set(TrainConfig.model_fields)), "steps": planning_steps})
    return run_stage("control", cfg, config.model, corpus_dataset(corpora, "sft"), stage_dir,
                     init=str(out / STAGE_DIRS["sft"] / "final"), progress=progress)


def rl_stage(config: PipelineConfig, out: Path, name: str, init: str, mode: str, modes: list[str],
             progress: bool) -> None:
    """RL-tune ``out/<init>/final`` through ``mode`` into ``out/<name>``, then evaluate it on the RL
    run's own pool, which holds the final weights when training ends (no extra engine start)."""
    from cot_ray.rl.driver import run_rl

    cache = out / "eval" / f"{name}.json"
    final = run_rl(config, str(out / init / "final"), mode, out / name, progress=progress,
                   on_done=lambda pool: _cached(cache, lambda: eval_checkpoint(config, pool, name, modes, out)))
    if not cache.exists():  # the RL run was already finished: evaluate on a fresh pool
        _cached(cache, lambda: with_pool(config, final, lambda pool: eval_checkpoint(config, pool, name, modes, out)))


def _missing_reflective_data(config: PipelineConfig, out: Path) -> list[tuple[str, Path]]:
    paths = [(t, out / "data" / f"reflective-{t}.parquet") for t in config.corpus.tasks]
    return [(t, p) for t, p in paths if not p.exists()]


def train_stage(stage: str, config: PipelineConfig, out: Path, corpora: list[str], progress: bool = True) -> Path:
    """Train one of stages I-III into ``out/stageN-*`` unless it is done; returns its final/.

    Each stage starts from the previous stage's final checkpoint; stage III first samples its
    data with the rollout pool (kept in ``data/reflective-<task>.parquet``).
    """
    from cot_ray.train.stages import corpus_dataset, reflective_dataset, run_stage, stage_done

    stage_dir = out / STAGE_DIRS[stage]
    if stage_done(stage_dir):
        log.info("%s: %s exists, skipped", stage, stage_dir / "final")
        return stage_dir / "final"
    order = list(STAGE_DIRS)
    init = None if stage == "pretrain" else out / STAGE_DIRS[order[order.index(stage) - 1]] / "final"
    if init is not None and not stage_done(init.parent):
        raise ValueError(f"{stage} starts from {init}, which does not exist yet: run {order[order.index(stage) - 1]}")
    if stage == "reflective-sft":
        cfg = config.reflective_sft
        data = [out / "data" / f"reflective-{t}.parquet" for t in config.corpus.tasks]
        missing = _missing_reflective_data(config, out)
        if missing:
            with_pool(config, init, lambda pool: [_sample_reflective(config, pool, t, p) for t, p in missing])
        dataset = reflective_dataset(corpora, [str(p) for p in data], cfg)
    else:
        cfg = config.pretrain if stage == "pretrain" else config.sft
        dataset = corpus_dataset(corpora, stage)
    return run_stage(stage, cfg, config.model, dataset, stage_dir, init=str(init) if init else None,
                     progress=progress)


def with_pool(config: PipelineConfig, checkpoint: Path, work):
    """Run ``work(pool)`` on a rollout pool over ``checkpoint``; the pool is gone afterwards, so
    the CPUs are free for the next training stage."""
    pool = _pool(config, str(checkpoint))
    try:
        return work(pool)
    finally:
        pool.shutdown()


def _pool(config: PipelineConfig, checkpoint: str):
    from cot_ray.rollout.pool import pool_from_config

    pool = pool_from_config(config.rollout, checkpoint)
    pool.wait_ready()
    return pool


def eval_checkpoint(config: PipelineConfig, pool, name: str, modes: list[str], out: Path) -> list[dict]:
    e, rows = config.eval, []
    for task_name in config.corpus.tasks:
        task = get_task(task_name)
        for difficulty in e.difficulties:
            problems = make_problems(task, difficulty, e.n, e.seed)
            runs = {}
            for mode in e.modes_on(difficulty, modes):
                runs[mode] = pool.run(task_name, problems, e.execution(mode, task_name))
                rows.append(_summary_row(name, task_name, difficulty, mode, runs[mode], out))
                if mode != "mtp" and "mtp" in runs:  # the same problems: a paired difference
                    d, low, high = paired_interval([t.correct for t in runs[mode]], [t.correct for t in runs["mtp"]])
                    rows[-1]["vs_mtp"] = {"difference": d, "low": low, "high": high}
                if mode == "rmtp" and "mtp" in runs:  # why reflection helps or not (Theorem 1)
                    rows[-1].update(reflection_diagnostics(task, pool, runs["mtp"], runs["rmtp"], seed=e.seed))
                    rows[-1]["discrimination"] = _discrimination(config, pool, task, problems, out / name / "final")
    return rows


def _discrimination(config: PipelineConfig, pool, task, problems: list[Problem], checkpoint: Path) -> dict | None:
    """Within-state and pooled AUC of the checkpoint's own verifier on its own proposals (at the
    states of its greedy runs on the first ``eval.discrimination_problems`` problems)."""
    from cot_ray.verify.discrimination import discrimination, proposals_at
    from cot_ray.verify.scoring import acceptance

    e = config.eval
    if not e.discrimination_problems or not (checkpoint / "model.safetensors").exists():
        return None
    detailed = config.reflective_sft.verification != "binary"
    proposals = proposals_at(pool, task, problems[:e.discrimination_problems], e.discrimination_samples,
                             e.execution("rmtp", task.name).revision_temperature, e.seed, detailed)
    return discrimination(proposals, acceptance(str(checkpoint), proposals)).to_dict()


def reflective_queries(config: PipelineConfig, task_name: str) -> list[Problem]:
    """Stage III's training queries: the ``reflective`` stream, never a held-out problem."""
    task = get_task(task_name)
    exclude = held_out_of(config, task_name)
    return [make_problem(task, config.corpus.difficulty, config.corpus.seed, i, "reflective", exclude)
            for i in range(config.reflective_sft.queries)]


def _sample_reflective(config: PipelineConfig, pool, task_name: str, path: Path) -> None:
    from cot_ray.train.reflective import sample_verification_records

    records = sample_verification_records(pool, task_name, reflective_queries(config, task_name), config.reflective_sft)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([x.row() for x in records]), path)
    sources = Counter(x.source for x in records)
    log.info("reflective data %s: %d examples (%d wrong steps; %s) -> %s", task_name, len(records),
             sum(not x.correct for x in records), ", ".join(f"{k} {v}" for k, v in sorted(sources.items())), path)
