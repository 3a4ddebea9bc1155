"""``cot-ray pipeline --dry-run``: the plan of a run, as it would go now, without starting Ray.

For each stage of :func:`cot_ray.pipeline.plan`: its size (steps, examples, problems) and whether
it will run (resuming from a checkpoint, if one is there) or be skipped, and why.
"""

from __future__ import annotations

from pathlib import Path

from cot_ray.config import PipelineConfig, TrainConfig
from cot_ray.layout import RL_RUNS, is_complete
from cot_ray.pipeline import Stage, plan
from cot_ray.train.checkpoints import latest_checkpoint


def describe(config: PipelineConfig, out: Path) -> list[str]:
    """One line per stage, then what it will do, in the order the pipeline runs them."""
    lines = [f"plan of {config.name} in {out}:"]
    for i, stage in enumerate(plan(config, out, progress=False), 1):
        lines.append(f"{i:2d}. {stage.name}: {size(config, stage)}")
        lines.append(f"    -> {status(stage, out)}")
    if not config.reflective_sft.control:
        lines.append("    stage III control: not in this run (reflective_sft.control: false)")
    lines += [f"    stage IV: RL through the {mode.upper()}: not in this run (rl.runs: [{', '.join(config.rl.runs)}])"
              for mode in (rl.mode for rl in RL_RUNS) if mode not in config.rl.runs]
    return lines


def status(stage: Stage, out: Path) -> str:
    """Why ``stage`` will be skipped, or what it will run (its inputs are earlier stages' outputs)."""
    outputs = [str(o.relative_to(out)) for o in stage.outputs]
    if stage.done():
        return f"skip: done ({', '.join(outputs)} already written)"
    folder = outputs[0].split("/")[0]
    resume = latest_checkpoint(out / folder) if outputs[0].endswith("/final") else None
    todo = [rel for o, rel in zip(stage.outputs, outputs) if not is_complete(o)]
    return (f"run{f' (resumes from {folder}/checkpoints/{resume.name})' if resume else ''}: writes "
            + ", ".join(todo))


def size(config: PipelineConfig, stage: Stage) -> str:
    """How much work ``stage`` is, read from the config section it runs with."""
    c, e, r, rl = config.corpus, config.eval, config.reflective_sft, config.rl
    first = str(stage.outputs[0].relative_to(stage.outputs[0].parents[1]))
    evaluation = f"{e.n} test problems per task, difficulty ({', '.join(e.difficulties)}) and mode"
    if first.startswith("data/corpus-"):
        return f"{c.n} expert CoTs per task ({', '.join(c.tasks)})"
    if first == "eval/experts.json":
        return f"expert and noisy experts, {evaluation} ({', '.join(e.modes)})"
    if first == "eval/stage2-sft.json":
        return f"{evaluation} (mtp); then {r.queries} queries x {r.proposals} proposals per task sampled and labelled"
    if first.startswith("eval/"):
        return evaluation
    if first.startswith("stage4-"):
        return (f"{rl.algorithm} for {rl.updates} updates of {rl.queries_per_update} queries x {rl.group_size} "
                f"samples, {rl.workers} learner(s), {rl.rollout.workers} rollout worker(s); then its eval")
    if first.startswith("stage3-control"):
        return f"the planning share of stage III's {_train(r)}"
    section = {"stage1-pretrain": config.pretrain, "stage2-sft": config.sft}.get(first.split("/")[0], r)
    return _train(section)


def _train(cfg: TrainConfig) -> str:
    length = f"{cfg.steps} steps" if cfg.steps else f"{cfg.epochs or 1.0:g} epochs"
    return f"{length}, batch {cfg.batch_size}, {cfg.workers} worker(s)"
