"""Sample identity: (query_id, sample_id) decides the samples, not how problems are cut into units."""

import dataclasses

from cot_ray.data.splits import make_problem
from cot_ray.data.trajectories import from_table, to_table
from cot_ray.mtp import ExecutionConfig, MTPExecutor
from cot_ray.mtp.expert import ExpertPolicy
from cot_ray.tasks import get_task

TASK = get_task("mult")
# the noisy expert is a per-request seeded engine (as CUDA vLLM is): its samples follow the seeds
POLICY = ExpertPolicy(TASK, step_error=0.4, false_positive=0.3, false_negative=0.3)
CONFIG = ExecutionConfig(mode="rmtp", plan_temperature=1.0, seed=7)


def _samples(queries: int = 8, group: int = 4) -> list:
    base = [make_problem(TASK, "id-easy", 0, i, "rl") for i in range(queries)]
    return [dataclasses.replace(p, sample_id=k) for p in base for k in range(group)]


def _run_in_units(problems: list, unit_size: int) -> list:
    """What the rollout pool does: cut the problems into units, each run on its own executor."""
    out = []
    for i in range(0, len(problems), unit_size):
        out += MTPExecutor(TASK, POLICY, CONFIG).run(problems[i:i + unit_size])
    return out


def _view(trajs: list) -> list:
    return [(t.problem.query_id, t.problem.sample_id, [(s.step, s.verification) for s in t.steps], t.answer)
            for t in trajs]


def test_unit_size_does_not_change_the_samples():
    problems = _samples()
    small, large = _run_in_units(problems, 3), _run_in_units(problems, 64)
    assert _view(small) == _view(large)
    # the samples of one query differ from each other (their seeds do): the group is not G copies
    first = [v[2] for v in _view(large)[:4]]
    assert len({str(steps) for steps in first}) > 1


def test_order_within_a_unit_does_not_change_a_sample():
    problems = _samples(queries=4, group=2)
    forward, backward = _run_in_units(problems, 64), _run_in_units(problems[::-1], 64)
    assert _view(forward) == _view(backward[::-1])


def test_identity_survives_parquet():
    trajs = _run_in_units(_samples(queries=2, group=2), 64)
    back = from_table(to_table(trajs))
    assert [(t.problem.query_id, t.problem.sample_id) for t in back] == [
        (t.problem.query_id, t.problem.sample_id) for t in trajs]
