"""GRPO's dynamic filtering: groups whose rewards are all equal are dropped and replaced."""

from types import SimpleNamespace

from cot_ray.config import PipelineConfig
from cot_ray.data.splits import key
from cot_ray.rl.driver import queries
from cot_ray.rl.experience import GroupFilter, Sampled, informative_groups, query_groups
from cot_ray.verify.verifier import Score


def _traj(query: str) -> SimpleNamespace:
    return SimpleNamespace(problem=SimpleNamespace(query=query), name=query)


def test_groups_are_the_samples_of_one_query_wherever_they_sit():
    trajs = [_traj(q) for q in "abab"]  # interleaved, as a re-queued work unit could return them
    groups = query_groups(trajs)
    assert groups == [[0, 2], [1, 3]]
    assert informative_groups([1, 1, 0, 1], groups) == [True, False]


def _round(labels: str) -> Sampled:
    """One sampling round of groups of 2: 'a' = rewards (1, 0), 'f' = flat (0, 0); queries are named."""
    rewards = [r for c in labels for r in ((1.0, 0.0) if c == "a" else (0.0, 0.0))]
    trajs = [_traj(f"{c}{i}") for i, c in enumerate(labels) for _ in range(2)]
    return Sampled(trajectories=trajs, scores=[Score(reward=r) for r in rewards])


def _names(trajs: list) -> list[str]:
    return [t.name for t in trajs]


def test_filter_keeps_informative_groups_first_and_fills_with_flat_ones():
    f = GroupFilter(wanted=3, filtering=True)
    f.add(_round("fafa"))  # round 0: 2 informative, 2 flat
    assert not f.full
    f.add(_round("ff"))  # round 1: nothing useful
    assert not f.full and f.flat_share == 4 / 6
    batch = f.batch()
    trajs, rewards = batch.trajectories, batch.rewards
    # 3 groups: the two informative ones, then the first flat one; groups stay contiguous
    assert _names(trajs) == ["a1", "a1", "a3", "a3", "f0", "f0"]
    assert rewards == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    f.add(_round("a"))
    assert f.full and _names(f.batch().trajectories)[::2] == ["a1", "a3", "a0"]


def test_without_filtering_groups_keep_sampling_order():
    f = GroupFilter(wanted=2, filtering=False)
    f.add(_round("fa"))
    assert f.full and _names(f.batch().trajectories)[::2] == ["f0", "a1"] and f.flat_share == 0.5


def test_resampling_rounds_draw_fresh_deterministic_queries():
    config = PipelineConfig.model_validate({"corpus": {"tasks": ["mult"]}, "eval": {"n": 10, "validation_n": 10},
                                            "rl": {"queries_per_update": 8, "group_size": 2}})
    first = queries(config, 3, 0)[1]
    assert [key(p) for p in first[::2]] == [key(p) for p in first[1::2]]  # each query G times in a row
    assert [(p.query, p.sample_id) for p in first[:2]] == [(first[0].query_id, 0), (first[0].query_id, 1)]
    assert len({p.query for p in first}) == 8  # one identity per query, G samples each
    again = [key(p) for p in queries(config, 3, 0)[1]]
    assert again == [key(p) for p in first]
    other = {key(p) for p in queries(config, 3, 1)[1]}
    assert other.isdisjoint({key(p) for p in first})  # round 1 brings new queries
    assert other.isdisjoint({key(p) for p in queries(config, 4, 0)[1]})  # and not the next update's
