"""The rollout worker's engine thread, with an in-process engine (no Ray, no vLLM): several units
share the engine, a weight update waits for the units in flight, and an engine failure reaches
every caller."""

import threading
import time

import pytest

from cot_ray.data.splits import make_problem
from cot_ray.mtp import ExecutionConfig, ExpertPolicy
from cot_ray.rollout import worker as worker_module
from cot_ray.tasks import get_task

TASK = get_task("mult")


class SlowExpert(ExpertPolicy):
    """The expert as an engine: a little slow per call, reloadable, and it logs what it did."""

    checkpoint = "expert"

    def __init__(self, fail_after: int | None = None):
        super().__init__(TASK)
        self.log: list[tuple[str, int]] = []
        self.fail_after = fail_after

    def generate(self, prompts, specs):
        if self.fail_after is not None and len(self.log) >= self.fail_after:
            raise RuntimeError("engine exploded")
        self.log.append(("generate", len(prompts)))
        time.sleep(0.01)
        return super().generate(prompts, specs)

    def reload(self, checkpoint):
        self.log.append(("reload", 0))
        return 0.0


@pytest.fixture
def make_worker(monkeypatch):
    def make(engine):
        monkeypatch.setattr("cot_ray.rollout.engines.make_engine", lambda *a, **k: engine)
        return worker_module.RolloutWorker("unused", version=1)
    return make


def problems(n, seed):
    return [make_problem(TASK, "id-hard", seed, i) for i in range(n)]


def test_units_share_the_engine_and_updates_wait_for_them(make_worker):
    engine = SlowExpert()
    w = make_worker(engine)
    results = {}

    def run(name, seed):
        results[name] = w.run("mult", problems(8, seed), ExecutionConfig(mode="rmtp"))

    threads = [threading.Thread(target=run, args=(k, k)) for k in ("a", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(w._in_flight) < 2 and time.monotonic() < deadline:  # both units are in flight
        time.sleep(0.001)
    assert w.update_weights("new", 2) == {"version": 2, "seconds": 0.0}
    after = w.run("mult", problems(4, 9), ExecutionConfig())
    for t in threads:
        t.join()
    assert all(t.correct and t.policy_version == 1 for k in "ab" for t in results[k])
    assert all(t.policy_version == 2 for t in after)
    reload_at = engine.log.index(("reload", 0))
    # both units were batched together (a call wider than one unit) and finished before the reload
    assert max(n for what, n in engine.log[:reload_at]) > 8
    steps_before = sum(len(s.steps) for k in "ab" for s in results[k]) * 2  # a step and its verification
    assert sum(n for what, n in engine.log[:reload_at]) == steps_before
    assert w.units_done == 3


def test_an_engine_failure_reaches_every_caller(make_worker):
    w = make_worker(SlowExpert(fail_after=2))
    errors = []

    def run(seed):
        try:
            w.run("mult", problems(4, seed), ExecutionConfig())
        except RuntimeError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == ["engine exploded"] * 3
    with pytest.raises(RuntimeError, match="engine exploded"):  # and the worker stays honest after
        w.generate([[1, 2]], [])
