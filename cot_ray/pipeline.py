"""The main job: every stage of a run, in order, into one run folder, resuming finished stages.

The run folder's paths and the resume rule live in :mod:`cot_ray.layout`. :func:`plan` lists
the stages, each with the outputs it reads and writes; :func:`run_pipeline` records the config
first (:mod:`cot_ray.run_record`: resuming under another config is refused unless asked for),
then runs the stages top to bottom. A stage whose outputs are all complete
(:func:`cot_ray.layout.is_complete`) is skipped; otherwise it makes those that are not (a
training stage continues from its latest checkpoint). Every output is written atomically
(:mod:`cot_ray.atomic`), so a crash leaves no partial output for a resume to trust.
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

from cot_ray.atomic import write_parquet
from cot_ray.config import PipelineConfig, TrainConfig
from cot_ray.data.corpus import generate_corpus
from cot_ray.data.splits import held_out_of, make_problem
from cot_ray.layout import EVALS, RL_RUNS, STAGES, TRAINED, RLRun, RunLayout, TrainedStage, is_complete
from cot_ray.profile import Profile, phase
from cot_ray.profile import stage as profiled
from cot_ray.report import write_report
from cot_ray.rollout.keeper import PoolKeeper
from cot_ray.run_eval import evaluation, expert_baselines
from cot_ray.run_record import open_run
from cot_ray.tasks import Problem, get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One step of a run: the outputs it reads and writes (paths in the run folder) and how it
    runs. It is done when every output is complete (:func:`cot_ray.layout.is_complete`)."""

    name: str
    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]
    run: Callable[[], object]

    def done(self) -> bool:
        return all(is_complete(o) for o in self.outputs)


def plan(config: PipelineConfig, out: Path, progress: bool = True, pools: PoolKeeper | None = None) -> list[Stage]:
    """Every stage of a run in ``out``, in order (:mod:`cot_ray.layout` lists the paths).

    The rollout stages share ``pools``' one pool (:mod:`cot_ray.rollout.keeper`), so the stages
    are ordered to keep them together: both stage-III trainings come before their evaluations,
    and the RL runs follow those, on the same pool (two engine starts in all)."""
    run = RunLayout(Path(out))
    pools = pools or PoolKeeper(config.rollout)
    tasks = config.corpus.tasks
    corpora = tuple(run.corpus(t) for t in tasks)
    reflective = tuple(run.reflective_data(t) for t in tasks)
    paths = [str(c) for c in corpora]
    pre, sft, s3, control = (run.final(s) for s in (*TRAINED, "control"))
    modes = list(config.eval.modes)
    stages = [
        Stage("corpus", (), corpora, lambda: corpus_stage(config, run.root, progress)),
        Stage("expert baselines", (), (run.eval_summary("experts"),), lambda: expert_baselines(config, run, progress)),
        Stage("stage I: pretraining", corpora, (pre,), lambda: train_stage("pretrain", config, run.root, paths,
                                                                             progress)),
        Stage("stage II: SFT", (pre,), (sft,), lambda: train_stage("sft", config, run.root, paths, progress)),
        Stage("stage II eval + stage-III sampling", (sft,), (run.eval_summary(STAGES["sft"]), *reflective),
              lambda: sft_pool_stage(config, run, pools)),
        Stage("stage III: reflective SFT", (sft, *reflective), (s3,),
              lambda: train_stage("reflective-sft", config, run.root, paths, progress, pools)),
    ]
    if config.reflective_sft.control:
        stages.append(Stage("stage III control: planning only", (sft, *reflective), (control,),
                            lambda: control_stage(config, run, paths, progress, pools)))
    stages.append(Stage("stage III eval", (s3,), (run.eval_summary(STAGES["reflective-sft"]),),
                        lambda: eval_stage(config, run, "reflective-sft", modes, pools)))
    if config.reflective_sft.control:
        stages.append(Stage("stage III control eval", (control,), (run.eval_summary(STAGES["control"]),),
                            lambda: eval_stage(config, run, "control", ["mtp"], pools)))
    for rl in RL_RUNS:
        if rl.mode in config.rl.runs:
            stages.append(Stage(f"stage IV: RL through the {rl.mode.upper()}", (run.final(rl.init),),
                                (run.final(rl.stage), run.eval_summary(rl.name)),
                                lambda rl=rl: rl_stage(config, run, rl, list(rl.eval_modes or modes), progress, pools)))
    return stages


def run_pipeline(config: PipelineConfig, out: str | Path, progress: bool = True,
                 allow_config_change: bool = False) -> Path:
    """Run every stage of :func:`plan` that is not done into ``out``; returns the report's path.
    A folder made with another config is refused unless ``allow_config_change``
    (:mod:`cot_ray.run_record` says what a resumed run then keeps)."""
    run = RunLayout(Path(out).resolve())
    run.root.mkdir(parents=True, exist_ok=True)
    open_run(run, config, allow_config_change)
    t0, profile = time.time(), Profile.load(run.profile)
    with PoolKeeper(config.rollout) as pools:
        for stage in plan(config, run.root, progress, pools):
            if stage.done():
                log.info("%s: done (%s), skipped", stage.name, ", ".join(map(run.relative, stage.outputs)))
                continue
            absent = [run.relative(i) for i in stage.inputs if not is_complete(i)]
            if absent:
                raise RuntimeError(f"{stage.name} needs {', '.join(absent)}, which no earlier stage wrote")
            t_stage = time.time()
            with profiled(profile, stage.name):
                stage.run()
            log.info("%s: finished in %.0fs", stage.name, time.time() - t_stage)
    log.info("rollout pool started %d time(s) in this run", pools.starts)
    summaries = [run.eval_summary(name) for name in EVALS]
    rows = [row for path in summaries if is_complete(path) for row in json.loads(path.read_text())]
    report = write_report(config, rows, run.root)
    log.info("pipeline finished in %.1fs; report: %s", time.time() - t0, report)
    return report


def corpus_stage(config: PipelineConfig, out: Path, progress: bool) -> list[str]:
    """Each task's corpus in the run folder ``out`` that is not complete yet; returns them all."""
    c, run = config.corpus, RunLayout(Path(out))
    paths = []
    for task in c.tasks:
        path = run.corpus(task)
        paths.append(str(path))
        if is_complete(path):
            log.info("corpus %s: %s complete, skipped", task, path)
            continue
        t0 = time.time()
        with phase("data"):
            table = generate_corpus(task, c.n, str(path), seed=c.seed, difficulty=c.difficulty,
                                    shard_size=c.shard_size, progress=progress, exclude=held_out_of(config, task))
        log.info("corpus %s: %d rows in %.1fs -> %s", task, table.num_rows, time.time() - t0, path)
    return paths


def sft_pool_stage(config: PipelineConfig, run: RunLayout, pools: PoolKeeper) -> None:
    """The stage-II policy's rollout pool both evaluates it and samples the stage-III data."""
    pool = pools.get(run.final("sft"))
    evaluation(config, run, "sft", ["mtp"], pool)
    for task, path in _missing_reflective_data(config, run):
        _sample_reflective(config, pool, task, path)


def eval_stage(config: PipelineConfig, run: RunLayout, stage: str, modes: list[str], pools: PoolKeeper) -> list[dict]:
    """Evaluate the stage's ``final`` checkpoint on the run's pool, reloaded with its weights."""
    return evaluation(config, run, stage, modes, pools.get(run.final(stage)))


def control_stage(config: PipelineConfig, run: RunLayout, corpora: list[str], progress: bool,
                  pools: PoolKeeper) -> Path:
    """Stage III's control: planning only, to isolate the effect of learning to verify.

    It starts from the stage-II policy, like stage III, and trains on the same expert planning
    examples stage III mixes in, as many of them as stage III saw (its steps times the planning
    share of its mixture), with no verification examples. Stage-III MTP accuracy minus the
    control's is then the effect of learning to verify, not of more planning SFT.
    """
    from cot_ray.train.stages import corpus_dataset, mixture_of, run_stage

    r = config.reflective_sft
    mix = mixture_of(corpora, [str(run.reflective_data(t)) for t in config.corpus.tasks], r)
    steps = r.steps or math.ceil((r.epochs or 1.0) * (mix.planning + mix.verification) / r.batch_size)
    planning_steps = max(1, round(steps * mix.planning_share))
    log.info("control: %d planning steps (stage III: %d steps, %.0f%% of its examples planning)",
             planning_steps, steps, 100 * mix.planning_share)
    cfg = TrainConfig.model_validate({**r.model_dump(include=set(TrainConfig.model_fields)), "steps": planning_steps})
    pools.close()  # training needs the CPUs
    with phase("training"):
        return run_stage("control", cfg, config.model, corpus_dataset(corpora, "sft"), run.stage("control"),
                         init=str(run.final("sft")), progress=progress)


def rl_stage(config: PipelineConfig, run: RunLayout, rl: RLRun, modes: list[str], progress: bool,
             pools: PoolKeeper) -> None:
    """RL-tune the final policy of ``rl.init`` through ``rl.mode`` on the run's pool (sized for RL:
    its learner takes a core), then evaluate it there, the pool back at its full size and still
    holding the weights training ended with."""
    from cot_ray.rl.driver import run_rl

    with phase("RL"):
        run_rl(config, str(run.final(rl.init)), rl.mode, run.stage(rl.stage), progress=progress,
               on_done=lambda pool: evaluation(config, run, rl.stage, modes, pools.get(pool.checkpoint)),
               pool=pools.get(run.final(rl.init), config.rl.rollout))
    if not is_complete(run.eval_summary(rl.name)):  # the RL run was already finished
        eval_stage(config, run, rl.stage, modes, pools)


def _missing_reflective_data(config: PipelineConfig, run: RunLayout) -> list[tuple[str, Path]]:
    paths = [(t, run.reflective_data(t)) for t in config.corpus.tasks]
    return [(t, p) for t, p in paths if not is_complete(p)]


def train_stage(stage: TrainedStage, config: PipelineConfig, out: Path, corpora: list[str], progress: bool = True,
                pools: PoolKeeper | None = None) -> Path:
    """Train one of stages I-III in the run folder ``out`` unless it is done; returns its final/.

    Each stage starts from the previous stage's final checkpoint; stage III first samples its
    data with the rollout pool (kept in ``data/reflective-<task>.parquet``) if it is missing.
    ``pools``' pool is shut down before training (the CPUs are the trainer's).
    """
    from cot_ray.train.stages import corpus_dataset, reflective_dataset, run_stage

    run = RunLayout(Path(out))
    if is_complete(run.final(stage)):
        log.info("%s: %s complete, skipped", stage, run.final(stage))
        return run.final(stage)
    previous = TRAINED[TRAINED.index(stage) - 1] if stage != "pretrain" else None
    init = run.final(previous) if previous else None
    if init is not None and not is_complete(init):
        raise ValueError(f"{stage} starts from {init}, which does not exist yet: run {previous}")
    pools = pools or PoolKeeper(config.rollout)
    if stage == "reflective-sft":
        cfg = config.reflective_sft
        for task, path in _missing_reflective_data(config, run):
            _sample_reflective(config, pools.get(init), task, path)
        dataset = reflective_dataset(corpora, [str(run.reflective_data(t)) for t in config.corpus.tasks], cfg)
    else:
        cfg = config.pretrain if stage == "pretrain" else config.sft
        dataset = corpus_dataset(corpora, stage)
    pools.close()
    with phase("training"):
        return run_stage(stage, cfg, config.model, dataset, run.stage(stage), init=str(init) if init else None,
                         progress=progress)


def reflective_queries(config: PipelineConfig, task_name: str) -> list[Problem]:
    """Stage III's training queries: the ``reflective`` stream, never a held-out problem."""
    task = get_task(task_name)
    exclude = held_out_of(config, task_name)
    return [make_problem(task, config.corpus.difficulty, config.corpus.seed, i, "reflective", exclude)
            for i in range(config.reflective_sft.queries)]


def _sample_reflective(config: PipelineConfig, pool, task_name: str, path: Path) -> None:
    from cot_ray.train.reflective import sample_verification_records

    with phase("sampling"):
        records = sample_verification_records(pool, task_name, reflective_queries(config, task_name),
                                              config.reflective_sft)
    write_parquet(path, pa.Table.from_pylist([x.row() for x in records]))
    sources = Counter(x.source for x in records)
    log.info("reflective data %s: %d examples (%d wrong steps; %s) -> %s", task_name, len(records),
             sum(not x.correct for x in records), ", ".join(f"{k} {v}" for k, v in sorted(sources.items())), path)
