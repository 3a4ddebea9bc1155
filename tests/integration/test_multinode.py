"""A multi-node Ray cluster on one machine (``ray.cluster_utils.Cluster``): a head, trainer nodes
and rollout nodes, each a raylet of its own with custom resources, as on a real cluster.

Rollout workers here run the torch reference engine: what is tested is where workers land and
what happens when a node goes, and four vLLM engines would not fit the CI machine's two cores
(the vLLM pool has its own kill test in test_rollout.py).
"""

import csv
import json
import threading
import time

import pytest

from cot_ray.data.splits import make_problem
from cot_ray.mtp import ExecutionConfig
from cot_ray.tasks import get_task

pytestmark = pytest.mark.integration

FAST_HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                      "health_check_failure_threshold": 4}
"""A lost node is declared dead in about two seconds instead of Ray's default 30 or so."""
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 ** 2}
CFG = ExecutionConfig(mode="mtp", max_step_tokens=24, step_budget=3)


@pytest.fixture(scope="module")
def cluster():
    """Head (2 CPUs, no trainer or rollout resource) plus two rollout nodes; tests add more."""
    import ray
    from ray.cluster_utils import Cluster

    from cot_ray.loopback import start_loopback
    from cot_ray.raycluster import ensure_ray

    was_up = ray.is_initialized()
    ray.shutdown()
    start_loopback()
    c = Cluster(initialize_head=True, connect=True,
                head_node_args={"num_cpus": 2, "object_store_memory": 150 * 1024 ** 2,
                                "_system_config": FAST_HEALTH_CHECKS})
    c.rollout = [c.add_node(resources={"rollout": 1}, **NODE) for _ in range(2)]
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()
    if was_up:  # the session's local Ray, for the test files that run after this one
        ensure_ray(num_cpus=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from cot_ray.model import build_model, save_checkpoint

    path = tmp_path_factory.mktemp("tiny")
    save_checkpoint(build_model("tiny", seed=0, max_positions=256), path)
    return str(path)


def _problems(n):
    task = get_task("mult")
    return [make_problem(task, "id-easy", 5, i) for i in range(n)]


def test_rollout_workers_land_on_rollout_nodes_and_scale_onto_a_new_one(cluster, checkpoint):
    from cot_ray.rollout.pool import RolloutPool

    pool = RolloutPool(checkpoint, num_workers=2, engine="torch", worker_resources={"rollout": 1}, unit_size=4)
    try:
        pool.wait_ready(120)
        first = {n.node_id for n in cluster.rollout}
        assert set(pool.placement().values()) == first  # one per rollout node, none on the head
        pool.scale(3)  # no rollout slot is free: the third worker waits for a node
        time.sleep(2)
        assert len(pool.placement()) == 2
        added = cluster.add_node(resources={"rollout": 1}, **NODE)
        cluster.rollout.append(added)
        pool.wait_ready(120)
        assert sorted(pool.placement().values()) == sorted(first | {added.node_id})
        problems = _problems(24)
        trajs = pool.run("mult", problems, CFG)
        assert [t.problem for t in trajs] == problems
        assert len({w for w, n in pool.stats.units_by_worker.items() if n}) == 3  # the new node did work
    finally:
        pool.shutdown()


def test_losing_a_rollout_node_mid_run_loses_and_duplicates_nothing(cluster, checkpoint):
    from cot_ray.rollout.pool import RolloutPool

    pool = RolloutPool(checkpoint, num_workers=2, engine="torch", worker_resources={"rollout": 1}, unit_size=2)
    removed = []

    def remove_a_busy_node(done: int, total: int) -> None:
        if removed:
            return
        node = next(n for n in cluster.rollout if n.node_id in pool.placement().values())
        cluster.rollout.remove(node)
        cluster.remove_node(node, allow_graceful=False)
        removed.append(node.node_id)
        cluster.rollout.append(cluster.add_node(resources={"rollout": 1}, **NODE))  # where the replacement goes

    try:
        pool.wait_ready(120)
        problems = _problems(40)
        trajs = pool.run("mult", problems, CFG, on_unit=remove_a_busy_node)
        assert removed
        assert [t.problem for t in trajs] == problems  # each problem exactly once, in order
        assert pool.stats.units_redone >= 1 and pool.stats.replaced >= 1
        assert removed[0] not in pool.placement().values()
    finally:
        pool.shutdown()


CONFIG = {
    "name": "multinode",
    "model": {"size": "tiny", "max_positions": 512},
    "corpus": {"tasks": ["mult"], "n": 128, "shard_size": 64, "difficulty": "id-easy"},
    "pretrain": {"workers": 1, "steps": 120, "batch_size": 16, "block_size": 128, "checkpoint_every": 20,
                 "warmup_steps": 5, "report_every": 20, "max_failures": 2, "resources": {"trainer": 1}},
}


def test_losing_the_trainer_node_resumes_the_stage_on_another_node(cluster, tmp_path):
    """The head holds no ``trainer`` resource, so the worker lands on the one trainer node; a
    second trainer node joins (as an autoscaler would add one) and the first is removed
    mid-stage: Ray Train restarts the worker there and the stage resumes from its checkpoint."""
    from cot_ray.config import PipelineConfig
    from cot_ray.pipeline import corpus_stage, train_stage

    cfg = PipelineConfig.model_validate(CONFIG)
    first = cluster.add_node(resources={"trainer": 1}, **NODE)
    corpora = corpus_stage(cfg, tmp_path, progress=False)
    stage = tmp_path / "stage1-pretrain"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(final=train_stage("pretrain", cfg, tmp_path, corpora,
                                                                               progress=False)))
    thread.start()
    deadline = time.time() + 300
    while not (stage / "checkpoints" / "step-000040").exists():
        assert thread.is_alive() and time.time() < deadline, "no checkpoint before the node was removed"
        time.sleep(0.2)
    assert json.loads((stage / "workers" / "rank-0.json").read_text())["node"] == first.node_id
    second = cluster.add_node(resources={"trainer": 1}, **NODE)
    cluster.remove_node(first, allow_graceful=False)
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert (result["final"] / "model.safetensors").exists()
    assert json.loads((stage / "workers" / "rank-0.json").read_text())["node"] == second.node_id
    with open(stage / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 121))  # none lost, none twice
    cluster.remove_node(second)
