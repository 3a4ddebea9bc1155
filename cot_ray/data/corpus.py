"""The stage-I CoT corpus: expert traces for a mixture of tasks and difficulties, as Parquet.

Row ``i`` of a corpus depends only on (task, seed, i), never on how the work was split, so a
corpus made by many Ray tasks is identical to one made in a single process (tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cot_ray.atomic import write_parquet
from cot_ray.data.splits import make_problem
from cot_ray.tasks import Problem, Task, check_difficulty, get_task, question_key
from cot_ray.tokenizer import Tokenizer

MAX_TRACE_STEPS = 200
"""Expert traces are far shorter (sudoku ood-hard: < 60); a longer one means a bug."""

SCHEMA = pa.schema([
    pa.field("id", pa.int64()),
    pa.field("task", pa.string()),
    pa.field("difficulty", pa.string()),
    pa.field("question", pa.string()),
    pa.field("answer", pa.string()),
    pa.field("trace", pa.list_(pa.struct([
        pa.field("state", pa.string()),
        pa.field("step", pa.string()),
        pa.field("verification", pa.string()),
        pa.field("verification_detailed", pa.string()),
    ]))),
    pa.field("n_steps", pa.int32()),
    pa.field("text", pa.string()),
    pa.field("n_tokens", pa.int32()),
])


def expert_trace(task: Task, problem: Problem) -> list[tuple[str, str]]:
    """The expert's (state, step) pairs from S_0 to the answer step."""
    state, trace = task.initial_state(problem), []
    for _ in range(MAX_TRACE_STEPS):
        step = task.expert_step(state, problem)
        trace.append((state, step))
        t = task.transition(state, step)
        if t.is_answer:
            return trace
        state = t.next_state or ""
    raise RuntimeError(f"expert did not finish {problem.question} in {MAX_TRACE_STEPS} steps")


def make_row(task: Task, problem: Problem, index: int, tok: Tokenizer) -> dict[str, Any]:
    trace = expert_trace(task, problem)
    doc = tok.document(trace[0][0], [step for _, step in trace])
    return {
        "id": index,
        "task": task.name,
        "difficulty": problem.difficulty,
        "question": question_key(problem.question),
        "answer": problem.answer,
        "trace": [
            {
                "state": s,
                "step": r,
                "verification": task.verify(s, r).text(),
                "verification_detailed": task.verify(s, r, detailed=True).text(),
            }
            for s, r in trace
        ],
        "n_steps": len(trace),
        "text": tok.decode(doc, skip_special=False),
        "n_tokens": len(doc),
    }


def make_table(task_name: str, difficulty: str | None, seed: int, start: int, count: int,
               exclude: frozenset[str] = frozenset()) -> pa.Table:
    """Rows ``start .. start+count-1`` as an Arrow table (the unit of parallel work); problems
    whose key is in ``exclude`` (the held-out ones) are replaced, see :mod:`cot_ray.data.splits`."""
    task, tok = get_task(task_name), Tokenizer()
    rows = [make_row(task, make_problem(task, difficulty, seed, i, "corpus", exclude), i, tok)
            for i in range(start, start + count)]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def shards(n: int, shard_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, shard_size):
        yield start, min(shard_size, n - start)


def check_corpus_args(task: str, n: int, difficulty: str | None, out: str) -> None:
    """Fail before any work, with one line naming the bad argument."""
    get_task(task)
    if n <= 0:
        raise ValueError(f"--n must be a positive number of examples, got {n}")
    if difficulty is not None:
        check_difficulty(difficulty)
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create folder {parent!r}: {err.strerror}") from None
    if not os.access(parent, os.W_OK) or os.path.isdir(out):
        raise ValueError(f"--out: cannot write {out!r}")


def generate_corpus(
    task: str,
    n: int,
    out: str,
    seed: int = 0,
    difficulty: str | None = None,
    shard_size: int = 256,
    parallel: bool = True,
    progress: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> pa.Table:
    """Generate ``n`` rows and write them to the Parquet file ``out``; returns the table.

    ``exclude`` holds the keys of held-out problems (:func:`cot_ray.data.splits.held_out`).

    ``parallel`` runs one Ray task per shard on the current (or an auto-started local) Ray
    cluster; otherwise all shards run in this process.
    """
    check_corpus_args(task, n, difficulty, out)
    parts = list(shards(n, shard_size))
    if parallel:
        tables = _generate_on_ray(task, difficulty, seed, parts, progress, exclude)
    else:
        tables = [make_table(task, difficulty, seed, s, c, exclude) for s, c in _progress(parts, progress, task)]
    table = pa.concat_tables(tables)
    write_parquet(out, table)  # atomically: a resume never finds half a corpus
    return table


def _generate_on_ray(task: str, difficulty: str | None, seed: int, parts: list[tuple[int, int]],
                     progress: bool, exclude: frozenset[str]) -> list[pa.Table]:
    import ray

    from cot_ray.raycluster import ensure_ray

    ensure_ray()
    remote = ray.remote(num_cpus=1)(make_table)
    exclude_ref = ray.put(exclude)
    refs = [remote.remote(task, difficulty, seed, s, c, exclude_ref) for s, c in parts]
    pending = list(refs)
    for _ in _progress(range(len(refs)), progress, task):
        _, pending = ray.wait(pending, num_returns=1)
    return ray.get(refs)


def _progress(items, enabled: bool, task: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"corpus {task}", unit="shard")


def read_corpus(path: str) -> pa.Table:
    return pq.read_table(path)
