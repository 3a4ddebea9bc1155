"""Trajectories as Parquet: one row per problem, the steps as a nested list.

Written by ``cot-ray rollout`` and by the pipeline; read back into :class:`Trajectory` objects
(token ids and log-probs included) for offline analysis or training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from cot_ray.atomic import write_parquet
from cot_ray.mtp import StepRecord, Trajectory
from cot_ray.tasks import Problem, question_key

STEP_TYPE = pa.struct([
    pa.field("state", pa.string()), pa.field("step", pa.string()), pa.field("verification", pa.string()),
    pa.field("rejected", pa.bool_()), pa.field("valid", pa.bool_()), pa.field("error", pa.string()),
    pa.field("attempt", pa.int32()), pa.field("backtrack", pa.bool_()),
    pa.field("step_token_ids", pa.list_(pa.int32())), pa.field("step_logprobs", pa.list_(pa.float32())),
    pa.field("verify_token_ids", pa.list_(pa.int32())), pa.field("verify_logprobs", pa.list_(pa.float32())),
])
SCHEMA = pa.schema([
    pa.field("task", pa.string()), pa.field("difficulty", pa.string()), pa.field("question", pa.string()),
    pa.field("answer", pa.string()), pa.field("query_id", pa.string()), pa.field("sample_id", pa.int32()),
    pa.field("mode", pa.string()), pa.field("policy_version", pa.int64()),
    pa.field("predicted", pa.string()), pa.field("correct", pa.bool_()), pa.field("finish", pa.string()),
    pa.field("n_steps", pa.int32()), pa.field("n_reflections", pa.int32()), pa.field("n_rejections", pa.int32()),
    pa.field("n_tokens", pa.int32()), pa.field("steps", pa.list_(STEP_TYPE)),
])
_STEP_FIELDS = [f.name for f in STEP_TYPE]


def to_table(trajectories: Sequence[Trajectory]) -> pa.Table:
    rows = [{
        "task": t.problem.task, "difficulty": t.problem.difficulty,
        "question": question_key(t.problem.question), "answer": t.problem.answer,
        "query_id": t.problem.query_id, "sample_id": t.problem.sample_id,
        "mode": t.mode, "policy_version": t.policy_version, "predicted": t.answer, "correct": t.correct,
        "finish": t.finish, "n_steps": len(t.steps), "n_reflections": t.n_reflections,
        "n_rejections": t.n_rejections, "n_tokens": t.n_tokens,
        "steps": [{k: getattr(s, k) for k in _STEP_FIELDS} for s in t.steps],
    } for t in trajectories]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def from_table(table: pa.Table) -> list[Trajectory]:
    out = []
    for r in table.to_pylist():
        problem = Problem(task=r["task"], difficulty=r["difficulty"], question=json.loads(r["question"]),
                          answer=r["answer"], query_id=r.get("query_id") or "", sample_id=r.get("sample_id") or 0)
        steps = [StepRecord(**s) for s in r["steps"]]
        out.append(Trajectory(problem=problem, mode=r["mode"], steps=steps, answer=r["predicted"],
                              correct=r["correct"], finish=r["finish"], policy_version=r["policy_version"]))
    return out


def write_trajectories(path: str, trajectories: Sequence[Trajectory]) -> None:
    """One Parquet file, written atomically (:mod:`cot_ray.atomic`)."""
    write_parquet(path, to_table(trajectories))


def read_trajectories(path: str) -> list[Trajectory]:
    return from_table(pq.read_table(path))
