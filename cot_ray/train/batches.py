"""Each training step's batch, drawn from a worker's examples (numpy only: no Arrow, no torch).

Stage I draws random context windows from one token stream; stages II-III draw padded
(prompt, target) examples in length-grouped batches. Which batch a step gets depends only on
(seed, worker rank, step), so a resumed run sees exactly the data the killed run would have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cot_ray.train.workers import StageWorkerConfig


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


def shift_pad(rows: list[list[int]], pad_id: int, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Next-token inputs and targets, right-padded: position t of row i reads ``ids[t]`` and
    predicts ``ids[t + 1]``, so the target ``ids[k]`` sits at position k - 1. As wide as the
    longest row minus one, at most ``max_len``; longer rows are cut. Every training batch
    (stages I-III and the RL learner) is laid out by this one function."""
    width = max(len(ids) for ids in rows) - 1
    width = min(width, max_len) if max_len is not None else width
    x = np.full((len(rows), width), pad_id, dtype=np.int64)
    y = np.full((len(rows), width), pad_id, dtype=np.int64)
    for row, ids in enumerate(rows):
        ids = ids[: width + 1]
        x[row, :len(ids) - 1] = ids[:-1]
        y[row, :len(ids) - 1] = ids[1:]
    return x, y


def pad_examples(examples: list[tuple[list[int], int]], pad_id: int, max_len: int,
                 target_weights: dict[int, float] | None = None) -> tuple[np.ndarray, ...]:
    """Right-pad examples into inputs, targets and a mask that is 1 on target tokens only, or the
    weight ``target_weights`` gives a target token id (the loss is the mask-weighted mean)."""
    x, y = shift_pad([ids for ids, _ in examples], pad_id, max_len)
    width = x.shape[1]
    mask = np.zeros((len(examples), width), dtype=np.float32)
    for row, (ids, start) in enumerate(examples):
        n = min(len(ids), width + 1) - 1
        mask[row, max(start - 1, 0):n] = 1.0  # predicting ids[start:] from position start-1 on
    for token, weight in (target_weights or {}).items():
        mask[(y == token) & (mask > 0)] = weight
    return x, y, mask


class Batches:
    """Deterministic batches for one worker of ``world``: windows (stage I) or padded examples in
    length-grouped batches (stages II-III).

    The examples are put in a canonical (sorted) order first, so the batches depend on the data
    alone, not on the order Ray Data delivered its blocks in: a worker group restarted after a
    failure trains on exactly the batches the lost one would have (Ray Data's streaming split
    hands a restarted group different shards). Stages II-III then cut batches as
    ``trainer.batching`` says:

    - ``per-rank``: rank ``r`` keeps every ``world``-th example from ``r`` and draws its own batches
      of ``batch_size / world``, seeded by (seed, rank, epoch);
    - ``global``: every rank keeps all examples; one batch of ``batch_size`` per step, seeded by
      (seed, epoch), sorted by length, rank ``r`` taking rows ``r, r + world, ...``, so the ranks'
      batches are as wide as each other and DDP's allreduce waits for no one.
    """

    def __init__(self, examples: list[tuple[list[int], int]], cfg: StageWorkerConfig, rank: int, world: int):
        from cot_ray.tokenizer import Tokenizer

        if not examples:
            raise ValueError("this worker received no training examples; use fewer workers or more data")
        self.cfg, self.rank, self.world = cfg, rank, world
        self.split = cfg.trainer.batching == "global"
        tok = Tokenizer()
        self.pad = tok.pad_id
        self.weights = {tok.token_to_id[label]: w for label, w in cfg.label_weights().items()} or None
        self.windows = cfg.stage == "pretrain"
        if self.windows:
            self.stream = np.concatenate([np.asarray(ids, dtype=np.int64) for ids, _ in examples])
        else:
            examples = sorted(examples)
            self.examples = examples if self.split else examples[rank::world]
            if not self.examples:
                raise ValueError(f"rank {rank} of {world} received no training examples; use fewer workers "
                                 "or more data")
            self.lengths = np.array([len(ids) for ids, _ in self.examples])
            self._epoch, self._batches = -1, []

    def rows(self, step: int) -> list[tuple[list[int], int]]:
        """This rank's examples at ``step`` (stages II-III)."""
        train = self.cfg.trainer
        epoch, k = divmod(step, self.cfg.steps_per_epoch)
        if self._epoch != epoch:
            seed = [train.seed, epoch] if self.split else [train.seed, self.rank, epoch]
            size = train.batch_size if self.split else max(1, train.batch_size // self.world)
            self._epoch = epoch
            self._batches = length_grouped_batches(self.lengths, size, np.random.default_rng(seed))
        batch = self._batches[k % len(self._batches)]
        if self.split:  # an epoch's last batch may hold fewer rows than ranks: every rank still gets one
            batch = batch[[self.rank % len(batch)]] if len(batch) < self.world else batch[self.rank::self.world]
        return [self.examples[i] for i in batch]

    def __call__(self, step: int) -> tuple[np.ndarray, ...]:
        train = self.cfg.trainer
        if self.windows:
            rng = np.random.default_rng([train.seed, self.rank, step])
            return random_windows(self.stream, train.block_size, max(1, train.batch_size // self.world), rng)
        return pad_examples(self.rows(step), self.pad, train.max_len, self.weights)
