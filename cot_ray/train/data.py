"""Training examples for stages I-III, built from Parquet by Ray Data.

- Stage I (pretrain): every corpus row becomes one token document ``<bos>[S0]{R1}..{A}<eos>``;
  workers concatenate their documents into a stream and draw random context windows from it.
- Stage II (SFT): every expert (state, step) pair becomes ``<bos>[S]{R}<eos>``, loss on ``R}<eos>``.
- Stage III (reflective SFT): sampled steps labelled by the expert verifier become
  ``<bos>[S]{R}|V|<eos>`` with the loss on ``V`` only, mixed with expert steps carrying positive
  labels, ``<bos>[S]{R*}|✓|<eos>``, with the loss on step and labels (so planning is kept).

Every example is two columns: ``ids`` (list of token ids) and ``start`` (first target index;
0 for pretraining documents).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from cot_ray.tokenizer import Tokenizer

EXAMPLE_SCHEMA = pa.schema([pa.field("ids", pa.list_(pa.int32())), pa.field("start", pa.int32())])


def documents_batch(batch: pa.Table) -> pa.Table:
    """Ray Data ``map_batches`` function: corpus rows -> pretraining documents."""
    tok = Tokenizer()
    docs = [tok.document(trace[0]["state"], [t["step"] for t in trace]) for trace in batch.column("trace").to_pylist()]
    return pa.table({"ids": docs, "start": [0] * len(docs)}, schema=EXAMPLE_SCHEMA)


def sft_batch(batch: pa.Table, with_verification: str | None = None) -> pa.Table:
    """Ray Data ``map_batches`` function: corpus rows -> (state -> step) examples.

    ``with_verification`` ("binary" or "detailed") appends the expert's (positive) labels, the
    planning half of the reflective-SFT mixture.
    """
    tok = Tokenizer()
    key = {"binary": "verification", "detailed": "verification_detailed"}.get(with_verification or "")
    ids, starts = [], []
    for trace in batch.column("trace").to_pylist():
        for t in trace:
            e, s = tok.example(t["state"], t["step"], t[key] if key else None)
            ids.append(e)
            starts.append(s)
    return pa.table({"ids": ids, "start": starts}, schema=EXAMPLE_SCHEMA)


def verification_examples(records: list[dict[str, Any]]) -> pa.Table:
    """(state, step, verification) records -> examples with the loss on the verification only."""
    tok = Tokenizer()
    pairs = [tok.example(r["state"], r["step"], r["verification"], verification_only=True) for r in records]
    return pa.table({"ids": [p[0] for p in pairs], "start": [p[1] for p in pairs]}, schema=EXAMPLE_SCHEMA)


def random_windows(stream: np.ndarray, block: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``batch`` windows of ``block + 1`` tokens at random offsets: inputs, targets, loss mask."""
    if len(stream) <= block + 1:
        raise ValueError(f"the token stream ({len(stream)} tokens) is shorter than one window ({block + 1})")
    starts = rng.integers(0, len(stream) - block - 1, size=batch)
    windows = np.stack([stream[s:s + block + 1] for s in starts])
    return windows[:, :-1], windows[:, 1:], np.ones((batch, block), dtype=np.float32)


def length_grouped_batches(lengths: np.ndarray, batch: int, rng: np.random.Generator,
                           group: int = 32) -> list[np.ndarray]:
    """One epoch of batches, each of examples of similar length, in random order.

    A random permutation is cut into chunks of ``group`` batches; each chunk is sorted by length
    and cut into batches; the batches are shuffled. Padding then wastes little (mult steps run
    from 20 to 250 tokens, and a batch is as wide as its longest example), while every epoch
    still sees every example once, in an order fixed by ``rng``.
    """
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch * group):
        chunk = order[start:start + batch * group]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[k:k + batch] for k in range(0, len(chunk), batch)]
    return [batches[k] for k in rng.permutation(len(batches))]


def pad_examples(examples: list[tuple[list[int], int]], pad_id: int, max_len: int) -> tuple[np.ndarray, ...]:
    """Right-pad examples into inputs, targets and a mask that is 1 on target tokens only."""
    width = min(max(len(ids) for ids, _ in examples), max_len + 1) - 1
    x = np.full((len(examples), width), pad_id, dtype=np.int64)
    y = np.full((len(examples), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.float32)
    for row, (ids, start) in enumerate(examples):
        ids = ids[: width + 1]
        n = len(ids) - 1
        x[row, :n] = ids[:-1]
        y[row, :n] = ids[1:]
        mask[row, max(start - 1, 0):n] = 1.0  # predicting ids[start:] from position start-1 on
    return x, y, mask
