"""Training batches: as wide as the longest example, and padding never enters the loss."""

import numpy as np

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


def sft_config(batch_size: int, steps_per_epoch: int, seed: int = 0):
    from cot_ray.config import ModelConfig, TrainConfig
    from cot_ray.train.workers import StageWorkerConfig

    return StageWorkerConfig(stage="sft", out_dir="o", steps=1, trainer=TrainConfig(batch_size=batch_size, seed=seed),
                             model=ModelConfig(size="tiny"), steps_per_epoch=steps_per_epoch)


def test_ranks_split_one_global_batch_whatever_order_the_data_came_in():
    import random

    from cot_ray.train.batches import Batches

    rng = random.Random(0)
    examples = [([1] + [rng.randrange(3, 40) for _ in range(rng.randrange(5, 200))] + [2], 1) for _ in range(500)]
    shuffled = rng.sample(examples, len(examples))
    cfg = sft_config(batch_size=32, steps_per_epoch=16)
    ranks = [Batches(examples, cfg, r, 2) for r in range(2)]
    alone = Batches(shuffled, cfg, 0, 1)
    seen = []
    for step in range(16):
        rows = [b.rows(step) for b in ranks]
        assert len(rows[0]) == len(rows[1]) and len(rows[0]) in (16, 10)  # 500 = 15 x 32 + 20
        assert sorted(np.concatenate(rows).tolist()) == sorted(alone.rows(step).tolist())  # one global batch
        widths = [ranks[r](step)[0].shape[1] for r in range(2)]
        assert abs(widths[0] - widths[1]) <= 0.1 * max(widths)  # neither rank waits long for the other
        seen += np.concatenate(rows).tolist()
    assert sorted(seen) == list(range(500))  # an epoch covers the data once
    assert not np.array_equal(Batches(examples, sft_config(32, 16, seed=1), 0, 2).rows(0), ranks[0].rows(0))


def test_a_batch_smaller_than_the_world_still_gives_every_rank_a_row():
    from cot_ray.train.batches import Batches

    examples = [([1, 5, 6, 2], 1), ([1, 7, 2], 1), ([1, 8, 9, 9, 2], 1)]
    cfg = sft_config(batch_size=2, steps_per_epoch=2)
    rows = [Batches(examples, cfg, r, 4).rows(1) for r in range(4)]  # the second batch holds one example
    assert all(len(r) == 1 for r in rows)


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
