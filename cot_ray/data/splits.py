"""The data splits of a run, and the rule that keeps them apart.

Every problem a run uses comes from :func:`make_problem` with a named *stream*:

- ``corpus``: the expert CoTs of stages I-II;
- ``reflective``: the queries stage III samples from the stage-II policy;
- ``rl``: the queries of stage IV;
- ``validation``: held out, for decisions (formats, budgets, stopping);
- ``test``: held out, for the report.

Streams are independent random sequences, so a problem's place in one never depends on another.
The held-out problems (test and validation, every evaluated difficulty) are drawn first, and
every training stream skips them (:func:`held_out`): a reported accuracy is never measured on a
problem the model trained on. The training streams draw from the in-distribution mix (ID-Easy
and ID-Hard, paper Sec. 5) unless a difficulty is given.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from cot_ray.tasks import IN_DISTRIBUTION, Problem, Task, get_task, question_key

if TYPE_CHECKING:
    from cot_ray.config import PipelineConfig

STREAMS: tuple[str, ...] = ("corpus", "reflective", "rl", "validation", "test")
TRAINING_STREAMS: tuple[str, ...] = ("corpus", "reflective", "rl")


def key(problem: Problem) -> str:
    """What makes two problems the same problem: the question, whatever the difficulty label."""
    return question_key(problem.question)


def make_problem(task: Task, difficulty: str | None, seed: int, index: int, stream: str = "corpus",
                 exclude: frozenset[str] = frozenset()) -> Problem:
    """Problem ``index`` of ``stream``: depends only on (task, stream, seed, index, exclude).

    ``difficulty=None`` draws one of the in-distribution levels. Problems whose :func:`key` is
    in ``exclude`` are skipped by drawing again from the same generator, so the result is still
    deterministic.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown data stream {stream!r}; expected one of {', '.join(STREAMS)}")
    query_id = f"{task.name}/{stream}/{seed}/{index}"
    rng = random.Random(query_id)
    for _ in range(1000):
        problem = task.generate(difficulty or rng.choice(IN_DISTRIBUTION), rng)
        if key(problem) not in exclude:
            return dataclasses.replace(problem, query_id=query_id)
    raise RuntimeError(f"{task.name} {difficulty}: 1000 draws in a row were held out; the level is too small")


def problems(task: Task, difficulty: str | None, n: int, seed: int, stream: str,
             exclude: frozenset[str] = frozenset()) -> list[Problem]:
    """Problems 0..n-1 of a stream."""
    return [make_problem(task, difficulty, seed, i, stream, exclude) for i in range(n)]


def held_out(task: Task, difficulties: Iterable[str], n_test: int, n_validation: int, seed: int) -> frozenset[str]:
    """The keys of every test and validation problem: what no training stream may contain."""
    keys: set[str] = set()
    for difficulty in difficulties:
        keys.update(key(p) for p in problems(task, difficulty, n_test, seed, "test"))
        keys.update(key(p) for p in problems(task, difficulty, n_validation, seed, "validation"))
    return frozenset(keys)


def held_out_of(config: PipelineConfig, task_name: str) -> frozenset[str]:
    """The held-out keys of a run's config (its ``eval`` section) for one task."""
    e = config.eval
    return _held_out_cached(task_name, tuple(e.difficulties), e.n, e.validation_n, e.seed)


@lru_cache(maxsize=8)
def _held_out_cached(task_name: str, difficulties: tuple[str, ...], n_test: int, n_validation: int,
                     seed: int) -> frozenset[str]:
    return held_out(get_task(task_name), difficulties, n_test, n_validation, seed)
