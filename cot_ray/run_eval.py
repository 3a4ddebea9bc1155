"""A run's evaluations: ``eval/<name>.json`` for every checkpoint and for the expert baselines.

Each evaluation runs its policy on the held-out test problems (:func:`cot_ray.evaluate.make_problems`)
in every mode the config asks for, writes one JSONL record per problem and one summary row per
(task, difficulty, mode), and adds what explains the result: the reflective modes against MTP,
paired on the same problems; Theorem 1's diagnostics; the verifier's within-state AUC. A summary
that is complete is read back, not made again (the resume rule, :mod:`cot_ray.layout`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from cot_ray.atomic import write_json
from cot_ray.config import PipelineConfig
from cot_ray.evaluate import Summary, evaluate, make_problems, record, write_jsonl
from cot_ray.layout import STAGES, RunLayout, is_complete
from cot_ray.mtp import ExpertPolicy, Trajectory
from cot_ray.profile import phase
from cot_ray.stats import paired_interval
from cot_ray.tasks import Problem, get_task

log = logging.getLogger(__name__)


def _cached(path: Path, compute: Callable[[], list[dict]]) -> list[dict]:
    """The rows of ``path`` when it is complete, else ``compute()``'s, written there."""
    if is_complete(path):
        log.info("%s complete, skipped", path)
        return json.loads(path.read_text())
    rows = compute()
    write_json(path, rows)
    return rows


def _summary_row(policy: str, task: str, difficulty: str, mode: str, trajs: list[Trajectory], out: Path) -> dict:
    """One summary row of ``eval/<name>.json``; the per-problem records go to their JSONL."""
    from cot_ray.verify import rejections_by_truth, verification_counts

    spec = get_task(task)
    write_jsonl(RunLayout(out).eval_records(policy, task, difficulty, mode), (record(t, spec) for t in trajs))
    summary = Summary.of(trajs)
    counts = verification_counts(trajs)
    log.info("eval %s %s %s %s: %s e+=%s e-=%s", policy, task, difficulty, mode, summary.line(), counts.e_plus,
             counts.e_minus)
    return {"policy": policy, "task": task, "difficulty": difficulty, "mode": mode, **summary.__dict__,
            "e_plus": counts.e_plus, "e_minus": counts.e_minus, "by_truth": rejections_by_truth(spec, trajs)}


def expert_baselines(config: PipelineConfig, run: RunLayout, progress: bool) -> list[dict]:
    """Baselines: the expert and noisy experts through MTP, RMTP and RTBS."""
    @phase("evaluation")
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
                        rows.append(_summary_row(name, task_name, difficulty, mode, trajs, run.root))
        return rows

    return _cached(run.eval_summary("experts"), compute)


def evaluation(config: PipelineConfig, run: RunLayout, stage: str, modes: list[str], pool) -> list[dict]:
    """The evaluation of a stage's checkpoint, held by ``pool``: ``eval/<its folder>.json`` (and
    the JSONLs), made unless complete. Every checkpoint of the run is evaluated through here."""
    name = STAGES[stage]
    def compute() -> list[dict]:
        with phase("evaluation"):
            return eval_checkpoint(config, pool, name, modes, run.root)

    return _cached(run.eval_summary(name), compute)


def eval_checkpoint(config: PipelineConfig, pool, name: str, modes: list[str], out: Path) -> list[dict]:
    """Evaluate the policy on ``pool`` as ``name`` in ``modes``; the records go to ``out``'s eval/.

    Every (task, difficulty, mode) run goes to the pool at once (:meth:`RolloutPool.run_many`), so
    the engines stay full; the diagnostics that need more rollouts follow."""
    from cot_ray.rollout.units import RolloutRequest
    from cot_ray.verify.diagnostics import reflection_diagnostics

    e, rows = config.eval, []
    keys = [(task_name, difficulty, mode) for task_name in config.corpus.tasks for difficulty in e.difficulties
            for mode in e.modes_on(difficulty, modes)]
    problems = {(t, d): make_problems(get_task(t), d, e.n, e.seed) for t, d, _ in keys}
    done = pool.run_many([RolloutRequest(task=t, problems=problems[t, d], config=e.execution(m, t))
                          for t, d, m in keys])
    runs = dict(zip(keys, done))
    for t, d, mode in keys:
        task, mtp = get_task(t), runs.get((t, d, "mtp"))
        rows.append(_summary_row(name, t, d, mode, runs[t, d, mode], out))
        if mode != "mtp" and mtp is not None:  # the same problems: a paired difference
            diff, low, high = paired_interval([x.correct for x in runs[t, d, mode]], [x.correct for x in mtp])
            rows[-1]["vs_mtp"] = {"difference": diff, "low": low, "high": high}
        if mode == "rmtp" and mtp is not None:  # why reflection helps or not (Theorem 1)
            rows[-1].update(reflection_diagnostics(task, pool, mtp, runs[t, d, "rmtp"], seed=e.seed))
            rows[-1]["discrimination"] = _discrimination(config, pool, task, problems[t, d],
                                                         RunLayout(out).policy_final(name))
    return rows


def _discrimination(config: PipelineConfig, pool, task, problems: list[Problem], checkpoint: Path) -> dict | None:
    """Within-state and pooled AUC of the checkpoint's own verifier on its own proposals (at the
    states of its greedy runs on the first ``eval.discrimination_problems`` problems), by kind of
    wrong element, and (detailed) at the wrong element's own label."""
    import math

    from cot_ray.verify.discrimination import at_wrong_element, by_kind, discrimination, proposals_at
    from cot_ray.verify.scoring import label_acceptance

    e = config.eval
    if not e.discrimination_problems or not is_complete(checkpoint):
        return None
    detailed = config.reflective_sft.verification != "binary"
    proposals = proposals_at(pool, task, problems[:e.discrimination_problems], e.discrimination_samples,
                             e.execution("rmtp", task.name).revision_temperature, e.seed, detailed)
    labels = label_acceptance(str(checkpoint), proposals)
    scores = [math.prod(x) for x in labels]
    return {**discrimination(proposals, scores).to_dict(), "by_kind": [asdict(k) for k in by_kind(proposals, scores)],
            "at_element": [asdict(k) for k in at_wrong_element(proposals, labels)]}
