"""What the benches share: stage data from a freshly generated corpus, and a worker config for it.

Each bench script runs as ``python bench/<name>.py`` (its folder is on ``sys.path``), so they
import this as ``common``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cot_ray.config import ModelConfig, PipelineConfig, TrainConfig
from cot_ray.train.workers import StageWorkerConfig


def task_corpus(folder: str, problems: int, task: str = "mult") -> str:
    """A new corpus of ``problems`` expert CoTs of ``task`` in ``folder``; its path."""
    from cot_ray.data.corpus import generate_corpus

    path = f"{folder}/corpus.parquet"
    generate_corpus(task, problems, path, parallel=False)
    return path


def stage_examples(stage: str, corpus: str) -> list[tuple[list[int], int]]:
    """A corpus's stage-I documents (``pretrain``) or stage-II (state -> step) examples (``sft``)."""
    import pyarrow.parquet as pq

    from cot_ray.train.data import documents_batch, examples_of, sft_batch

    traces = pq.read_table(corpus, columns=["trace"])
    return examples_of((documents_batch if stage == "pretrain" else sft_batch)(traces))


def worker_config(stage: str, size: str, batch: int, steps: int, n_examples: int, block: int = 256,
                  max_len: int = 640) -> StageWorkerConfig:
    """The config a Ray Train worker of ``stage`` would get for these examples."""
    return StageWorkerConfig(stage=stage, out_dir=".", steps=steps, model=ModelConfig(size=size),
                             trainer=TrainConfig(batch_size=batch, block_size=block, max_len=max_len),
                             steps_per_epoch=max(1, -(-n_examples // batch)))


def trained_on(config: PipelineConfig, run: Path, task: str) -> frozenset[str]:
    """Every question the run trained on (corpus and stage-III queries): evaluations skip them, so
    the held-out rule holds even past the run's own ``eval.n`` / ``validation_n``."""
    import pyarrow.parquet as pq

    from cot_ray.data.splits import key
    from cot_ray.layout import RunLayout
    from cot_ray.pipeline import reflective_queries

    corpus = pq.read_table(RunLayout(run).corpus(task), columns=["question"]).column("question")
    return frozenset(corpus.to_pylist()) | {key(p) for p in reflective_queries(config, task)}


def held_out_args(p: argparse.ArgumentParser, run_holds: str, config_gives: str) -> None:
    """``--run``, ``--config``, ``--split`` and ``--n``: the arguments of a bench that measures a
    run's policies on held-out problems (decide on validation, report on test)."""
    p.add_argument("--run", required=True, help=f"a run folder with {run_holds}")
    p.add_argument("--config", required=True, help=f"{config_gives}, the pool and the eval seed")
    p.add_argument("--split", choices=["validation", "test"], default="validation")
    p.add_argument("--n", nargs="+", default=[("id-easy", 300), ("id-hard", 1000)], type=_difficulty_size,
                   help="problems per difficulty, as difficulty=n (default: id-easy=300 id-hard=1000)")


def _difficulty_size(text: str) -> tuple[str, int]:
    difficulty, _, n = text.partition("=")
    if not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected difficulty=n (e.g. id-hard=1000), got {text!r}")
    return difficulty, int(n)


def accuracy_cell(outcomes: list[bool]) -> str:
    """Accuracy % with its 95% Wilson interval."""
    from cot_ray.stats import wilson

    lo, hi = wilson(sum(outcomes), len(outcomes))
    return f"{100 * sum(outcomes) / max(1, len(outcomes)):.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def paired_cell(a: list[bool], b: list[bool]) -> str:
    """``a`` - ``b`` on the same problems, in points, with its 95% (Newcombe) interval."""
    from cot_ray.stats import paired_interval

    d, lo, hi = paired_interval(a, b)
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def expert_probe(checkpoint: str, task_name: str, problems: list, detailed: bool, seed: int = 0) -> tuple[list, dict]:
    """The verifier ``checkpoint`` on expert probes at the problems' expert paths
    (``cot_ray.verify.discrimination.expert_probes``): the probes with their acceptance, and the
    figures (within-state AUC overall and by kind of wrong element, right steps' acceptance; detailed:
    the label AUC at the wrong element itself, ``at_element``)."""
    import math
    import random
    from dataclasses import asdict

    from cot_ray.tasks import get_task
    from cot_ray.verify.discrimination import at_wrong_element, by_kind, discrimination, expert_probes
    from cot_ray.verify.scoring import label_acceptance

    probes = expert_probes(get_task(task_name), problems, random.Random(seed), detailed)
    labels = label_acceptance(checkpoint, probes)
    scores = [math.prod(x) for x in labels]
    overall, right = discrimination(probes, scores), [a for p, a in zip(probes, scores) if p.correct]
    figures = {"within_state_auc": overall.within_state_auc, "states": overall.states, "probes": len(probes),
               "right_acceptance": sum(right) / len(right), "kinds": [asdict(k) for k in by_kind(probes, scores)],
               "at_element": [asdict(k) for k in at_wrong_element(probes, labels)] if detailed else []}
    return list(zip(probes, scores)), figures
