"""Stage IV for real: vLLM rollout worker, reward actor, Ray Train GRPO learner, weight sync.

A tiny model is first trained (stages I-II on Ray Train) on toy multiplication until it solves
some problems; GRPO on a fixed set of queries must then raise the reward it earns.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from procs import session_processes

pytestmark = pytest.mark.integration

CONFIG = yaml.safe_load(open("configs/toy-mult.yaml"))


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _write(tmp_path, **rl):
    cfg = {**CONFIG, "rl": {**CONFIG["rl"], **rl}}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def sft_policy(tmp_path_factory, ray_local):
    from cot_ray.config import PipelineConfig
    from cot_ray.pipeline import corpus_stage, train_stage

    out = tmp_path_factory.mktemp("rl")
    cfg = PipelineConfig.model_validate(CONFIG)
    corpora = corpus_stage(cfg, out, progress=False)
    train_stage("pretrain", cfg, out, corpora, progress=False)
    return cfg, train_stage("sft", cfg, out, corpora, progress=False)


def _learned(rows):
    rewards = [float(r["reward"]) for r in rows]
    return sum(rewards[-6:]) / 6 - sum(rewards[:2]) / 2


def test_grpo_raises_the_reward_synchronously(sft_policy, tmp_path):
    from cot_ray.rl.driver import run_rl

    cfg, init = sft_policy
    final = run_rl(cfg, str(init), "mtp", tmp_path / "rl", progress=False)
    assert (final / "model.safetensors").exists()
    rows = _rows(tmp_path / "rl" / "metrics.csv")
    assert [int(r["update"]) for r in rows] == list(range(1, 17))
    assert [int(r["policy_version"]) for r in rows] == list(range(16))  # on-policy: fresh weights each time
    assert _learned(rows) > 0.04, [r["reward"] for r in rows]
    assert all(float(r["kl"]) >= 0 and float(r["generate_s"]) > 0 and float(r["sync_s"]) > 0 for r in rows)


def test_async_grpo_learns_and_resumes_after_a_kill(sft_policy, tmp_path):
    cfg, init = sft_policy
    config = _write(tmp_path, asynchronous=True, max_staleness=1)
    out = tmp_path / "rl-async"
    cmd = [sys.executable, "-m", "cot_ray.cli", "rl", "--config", str(config), "--init", str(init), "--out", str(out)]
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    deadline = time.time() + 900
    while not (out / "checkpoints" / "step-000004").exists() and proc.poll() is None:
        assert time.time() < deadline, "no RL checkpoint appeared"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists()
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    rows = _rows(out / "metrics.csv")
    updates = [int(r["update"]) for r in rows]
    # one row per update: the resumed run continued after the checkpoint of update 4 and replaced
    # the rows the killed run logged past it (update 4's own row is lost if the kill came between
    # the learner's checkpoint and the driver's log line)
    assert updates in (list(range(1, 17)), [u for u in range(1, 17) if u != 4])
    # async: batches are sampled with weights one version behind the learner, never more
    lag = [int(r["update"]) - 1 - int(r["policy_version"]) for r in rows if int(r["update"]) > 4]
    assert max(lag) <= 1 and any(x == 1 for x in lag)
    assert _learned(rows) > 0.04, [r["reward"] for r in rows]


def _rl_command(tmp_path, init, name, **rl):
    config = _write(tmp_path, **rl)
    out = tmp_path / name
    cmd = [sys.executable, "-m", "cot_ray.cli", "rl", "--config", str(config), "--init", str(init), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "RAY_ADDRESS": ""})
    return proc, out


def _kill_learner_after(proc, out, updates: int) -> float:
    """SIGKILL the learner's Ray Train worker once ``updates`` rows are logged; the kill time."""
    deadline = time.time() + 900
    while proc.poll() is None and not ((out / "metrics.csv").exists() and len(_rows(out / "metrics.csv")) >= updates):
        assert time.time() < deadline, "the RL run logged too few updates"
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()[-4000:]
    deadline = time.time() + 30
    while not (workers := session_processes(proc.pid, "RayTrainWorker")) and time.time() < deadline:
        time.sleep(0.5)  # seen once in CI: no worker listed at the first look
    assert workers, "no learner worker found"
    os.kill(workers[0], signal.SIGKILL)
    return time.time()


def test_a_killed_learner_is_replaced_and_no_update_is_lost_or_applied_twice(sft_policy, tmp_path):
    _, init = sft_policy
    proc, out = _rl_command(tmp_path, init, "rl-heal", max_failures=1)
    try:
        _kill_learner_after(proc, out, 6)  # two updates past the checkpoint of update 4: both are replayed
        log, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log[-4000:]
    assert "restarted (1 of 1) at version 4; resending" in log, log[-4000:]
    rows = _rows(out / "metrics.csv")
    assert [int(r["update"]) for r in rows] == list(range(1, 17))  # every update once, in one command
    assert [int(r["policy_version"]) for r in rows] == list(range(16))  # the pool got each new version
    assert (out / "final" / "model.safetensors").exists()


def test_a_learner_past_its_failure_budget_stops_the_run_within_a_minute(sft_policy, tmp_path):
    _, init = sft_policy
    proc, out = _rl_command(tmp_path, init, "rl-budget", max_failures=0)
    try:
        killed = _kill_learner_after(proc, out, 1)
        log, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - killed < 60
    assert proc.returncode != 0
    assert "the RL learner failed" in log and "rl.max_failures=0" in log, log[-3000:]
