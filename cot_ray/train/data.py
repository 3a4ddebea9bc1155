"""Training examples for stages I-III, built from Parquet by Ray Data.

- Stage I (pretrain): every corpus row becomes one token document ``<bos>[S0]{R1}..{A}<eos>``;
  workers concatenate their documents into a stream and draw random context windows from it.
- Stage II (SFT): every expert (state, step) pair becomes ``<bos>[S]{R}<eos>``, loss on ``R}<eos>``.
- Stage III (reflective SFT): sampled steps labelled by the expert verifier become
  ``<bos>[S]{R}|V|<eos>`` with the loss on ``V`` only, mixed with expert steps carrying positive
  labels, ``<bos>[S]{R*}|✓|<eos>``, with the loss on step and labels (so planning is kept), or,
  with ``planning_labels`` off, with the stage-II examples themselves.

Every example is two columns: ``ids`` (list of token ids) and ``start`` (first target index;
0 for pretraining documents).
"""

from __future__ import annotations

import zlib
from typing import Any

import pyarrow as pa

from cot_ray.tokenizer import Tokenizer

EXAMPLE_SCHEMA = pa.schema([pa.field("ids", pa.list_(pa.int32())), pa.field("start", pa.int32())])


def examples_of(table: pa.Table) -> list[tuple[list[int], int]]:
    """The (ids, start) examples of a table of :data:`EXAMPLE_SCHEMA`, as the batches take them."""
    return list(zip(table.column("ids").to_pylist(), table.column("start").to_pylist()))


def documents_batch(batch: pa.Table) -> pa.Table:
    """Ray Data ``map_batches`` function: corpus rows -> pretraining documents."""
    tok = Tokenizer()
    docs = [tok.document(trace[0]["state"], [t["step"] for t in trace]) for trace in batch.column("trace").to_pylist()]
    return pa.table({"ids": docs, "start": [0] * len(docs)}, schema=EXAMPLE_SCHEMA)


def kept(ids: list[int], fraction: float) -> bool:
    """Is this example in a ``fraction`` subsample? Decided by a hash of its tokens, so the same
    examples are kept on every run, however Ray Data cuts the data into blocks."""
    return fraction >= 1 or zlib.crc32(bytes(i & 0xFF for i in ids)) < fraction * 2**32


def sft_batch(batch: pa.Table, with_verification: str | None = None, fraction: float = 1.0) -> pa.Table:
    """Ray Data ``map_batches`` function: corpus rows -> (state -> step) examples.

    ``with_verification`` ("binary" or "detailed") appends the expert's (positive) labels, the
    planning half of the reflective-SFT mixture; ``fraction`` keeps that share of the examples
    (:func:`kept`).
    """
    tok = Tokenizer()
    key = {"binary": "verification", "detailed": "verification_detailed"}.get(with_verification or "")
    ids, starts = [], []
    for trace in batch.column("trace").to_pylist():
        for t in trace:
            e, s = tok.example(t["state"], t["step"], t[key] if key else None)
            if kept(e, fraction):
                ids.append(e)
                starts.append(s)
    return pa.table({"ids": ids, "start": starts}, schema=EXAMPLE_SCHEMA)


def verification_examples(records: list[dict[str, Any]], repeats: int = 1) -> pa.Table:
    """(state, step, verification) records -> examples with the loss on the verification only,
    each ``repeats`` times."""
    tok = Tokenizer()
    pairs = [tok.example(r["state"], r["step"], r["verification"], verification_only=True) for r in records] * repeats
    return pa.table({"ids": [p[0] for p in pairs], "start": [p[1] for p in pairs]}, schema=EXAMPLE_SCHEMA)
