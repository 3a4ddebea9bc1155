import numpy as np
import pytest

from cot_ray.config import PipelineConfig
from cot_ray.data.corpus import make_table
from cot_ray.data.splits import held_out, held_out_of, key, make_problem, problems
from cot_ray.tasks import get_task
from cot_ray.train.batches import length_grouped_batches

mult = get_task("mult")


def test_training_streams_never_contain_held_out_problems():
    test = problems(mult, "toy", 100, 1, "test")
    exclude = held_out(mult, ["toy"], 100, 50, 1)
    assert {key(p) for p in test} <= exclude
    corpus = make_table("mult", "toy", 0, 0, 400, exclude)
    questions = set(corpus.column("question").to_pylist())
    assert questions.isdisjoint(exclude)
    # the check can fail: without the exclusion, toy problems (a few thousand) collide at once
    unfiltered = make_table("mult", "toy", 0, 0, 400)
    assert not set(unfiltered.column("question").to_pylist()).isdisjoint(exclude)


def test_every_training_stream_of_a_run_skips_its_held_out_problems():
    from cot_ray.rl.driver import queries

    config = PipelineConfig.model_validate({
        "corpus": {"tasks": ["mult"], "difficulty": "toy"},
        "eval": {"n": 100, "validation_n": 100, "difficulties": ["toy"]},
        "rl": {"queries_per_update": 50, "group_size": 2},
    })
    exclude = held_out_of(config, "mult")
    assert len(exclude) > 150
    rl = {key(p) for update in range(4) for p in queries(config, update)[1]}
    reflective = {key(make_problem(mult, "toy", 0, i, "reflective", exclude)) for i in range(300)}
    assert rl.isdisjoint(exclude) and reflective.isdisjoint(exclude)


def test_streams_are_distinct_and_deterministic():
    a = problems(mult, "id-hard", 20, 0, "corpus")
    assert a == problems(mult, "id-hard", 20, 0, "corpus")
    assert {key(p) for p in a}.isdisjoint({key(p) for p in problems(mult, "id-hard", 20, 0, "test")})
    with pytest.raises(ValueError, match="stream"):
        make_problem(mult, None, 0, 0, "train")


def test_length_grouped_batches_cover_an_epoch_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 250, size=5000)
    batches = length_grouped_batches(lengths, 64, np.random.default_rng(1))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(5000))  # every example once
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_batches = np.array_split(rng.permutation(5000), len(batches))
    padded_random = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.7 * padded_random
