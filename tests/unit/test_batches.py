"""Training batches: as wide as the longest example, and padding never enters the loss."""

import numpy as np
import pytest

from cot_ray.train.batches import length_grouped_batches, pad_examples


def test_width_is_the_longest_example_and_the_mask_covers_exactly_the_targets():
    examples = [([1, 5, 6, 7, 8, 2], 3), ([1, 9, 9, 2], 2), (list(range(1, 41)), 10)]
    for batch, max_len in ((examples[:2], 640), (examples, 640), (examples, 33)):
        x, y, mask = pad_examples(batch, pad_id=0, max_len=max_len)
        width = x.shape[1]
        assert width == min(max(len(ids) for ids, _ in batch) - 1, max_len)
        for row, (ids, start) in enumerate(batch):
            n = min(len(ids), width + 1) - 1
            assert list(x[row, :n]) == ids[:n] and list(y[row, :n]) == ids[1:n + 1]
            assert mask[row].sum() == n - (start - 1) and not mask[row, n:].any() and not mask[row, :start - 1].any()


def test_length_grouped_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(10, 300, size=1000)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 4  # batches hold examples of similar length


def _batches(examples, batching: str, rank: int, world: int, batch: int = 8):
    from cot_ray.config import ModelConfig, TrainConfig
    from cot_ray.train.batches import Batches
    from cot_ray.train.workers import StageWorkerConfig

    cfg = StageWorkerConfig(stage="sft", out_dir="o", steps=1, model=ModelConfig(size="tiny"),
                            trainer=TrainConfig(batch_size=batch, batching=batching),
                            steps_per_epoch=-(-len(examples) // batch))
    return Batches(examples, cfg, rank, world)


@pytest.mark.parametrize("batching", ["per-rank", "global"])
def test_an_epoch_of_every_rank_covers_the_data_once_whatever_the_delivery_order(batching):
    import random

    examples = [([1] * (3 + i % 17), i % 3) for i in range(48)] + [([2, i], 1) for i in range(16)]
    shuffled = random.Random(1).sample(examples, len(examples))
    world, steps = 2, -(-len(examples) // 8)
    ranks = [_batches(examples, batching, r, world) for r in range(world)]
    assert [[b.rows(k) for k in range(2 * steps)] for b in ranks] == \
        [[_batches(shuffled, batching, r, world).rows(k) for k in range(2 * steps)] for r in range(world)]
    epoch = [e for b in ranks for k in range(steps) for e in b.rows(k)]
    assert sorted(epoch) == sorted(examples)
    assert [e for b in ranks for k in range(steps, 2 * steps) for e in b.rows(k)] != epoch  # reshuffled


def test_global_batching_gives_the_ranks_batches_of_one_width_and_per_rank_does_not():
    examples = [([1] * n, 1) for n in np.random.default_rng(0).integers(5, 200, size=512).tolist()]

    def widest_gap(batching: str) -> float:
        ranks = [_batches(examples, batching, r, 2, batch=16) for r in range(2)]
        widths = [[max(len(ids) for ids, _ in b.rows(k)) for b in ranks] for k in range(32)]
        return float(np.mean([abs(a - b) for a, b in widths]))

    assert widest_gap("global") < 10 < widest_gap("per-rank")


def test_target_weights_scale_the_loss_mask_on_those_targets_only():
    # prompt 1 7 2 | targets 7 9 7 8 (start 3): the target 7s get weight 5, the prompt's 7 stays 0
    x, y, mask = pad_examples([([1, 7, 2, 7, 9, 7, 8], 3), ([1, 7, 8], 1)], pad_id=0, max_len=16,
                              target_weights={7: 5.0})
    assert mask[0].tolist() == [0.0, 0.0, 5.0, 1.0, 5.0, 1.0]
    assert mask[1].tolist() == [5.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert (mask[y == 0] == 0).all()  # padding is never a target, whatever its weight


def test_stage_three_weights_every_label_token_and_rejects_on_top():
    from cot_ray.config import ModelConfig, TrainConfig
    from cot_ray.tasks import NEGATIVE, POSITIVE
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.train.batches import Batches
    from cot_ray.train.workers import StageWorkerConfig

    tok = Tokenizer()
    examples = [tok.example("12*3+0", "a36", POSITIVE, verification_only=True),
                tok.example("12*3+0", "a35", NEGATIVE, verification_only=True), tok.example("12*3+0", "a36")]
    cfg = StageWorkerConfig(stage="reflective-sft", out_dir="o", steps=1, trainer=TrainConfig(batch_size=3),
                            model=ModelConfig(size="tiny"), steps_per_epoch=1, verification_weight=50.0,
                            reject_label_weight=2.0)
    _, y, mask = Batches(examples, cfg, rank=0, world=1)(0)
    assert set(mask[y == tok.token_to_id[POSITIVE]].tolist()) == {50.0}
    assert set(mask[y == tok.token_to_id[NEGATIVE]].tolist()) == {100.0}
    assert mask.max(axis=1).tolist().count(1.0) == 1  # the planning example keeps weight 1
    plain = StageWorkerConfig(stage="sft", out_dir="o", steps=1, trainer=TrainConfig(batch_size=3),
                              model=ModelConfig(size="tiny"), steps_per_epoch=1)
    assert Batches(examples, plain, rank=0, world=1).weights is None
