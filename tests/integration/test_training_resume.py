"""Kill a Ray Train stage mid-run, run it again: it resumes from the latest checkpoint."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from procs import session_processes

pytestmark = pytest.mark.integration

CONFIG = """
name: resume
model: {size: tiny, max_positions: 512}
corpus: {tasks: [mult], n: 128, shard_size: 64, difficulty: id-easy}
pretrain: {workers: 2, steps: 300, batch_size: 16, block_size: 128, checkpoint_every: 50, warmup_steps: 5,
           report_every: 50}
"""


def test_killed_pretraining_resumes_and_reaches_the_final_step(tmp_path):
    cfg = tmp_path / "resume.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cot_ray.cli", "pretrain", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ckpts = out / "stage1-pretrain" / "checkpoints"
    deadline = time.time() + 600
    while not any(p.name == "step-000050" for p in ckpts.glob("step-*")) and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray and both training workers
    proc.wait()
    assert not (out / "stage1-pretrain" / "final").exists(), "the run finished before it was killed"
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "resuming from" in log and "at step" in log
    with open(out / "stage1-pretrain" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 301))  # one row per step, none logged twice after the resume
    assert (out / "stage1-pretrain" / "final" / "model.safetensors").exists()
    assert (ckpts / "step-000300").exists()


def test_a_killed_train_worker_is_replaced_within_the_same_command(tmp_path):
    cfg = tmp_path / "resume.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cot_ray.cli", "pretrain", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ckpts = out / "stage1-pretrain" / "checkpoints"
    deadline = time.time() + 600
    while not any(p.name == "step-000050" for p in ckpts.glob("step-*")) and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    workers = session_processes(proc.pid, "RayTrainWorker")
    assert workers, "no Ray Train worker found"
    os.kill(workers[0], signal.SIGKILL)  # one of the two workers, mid-stage
    try:
        log, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log[-4000:]
    assert (out / "stage1-pretrain" / "final" / "model.safetensors").exists()
    with open(out / "stage1-pretrain" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 301))  # resumed from a checkpoint: no step lost, none logged twice
    # the restarted group trained on exactly the batches the lost one would have: the model is
    # bit for bit the one an undisturbed run makes
    calm = tmp_path / "undisturbed"
    undisturbed = subprocess.run(cmd[:-1] + [str(calm)], capture_output=True, text=True, timeout=900)
    assert undisturbed.returncode == 0, undisturbed.stderr[-3000:]
    from safetensors.torch import load_file

    hit, ref = (load_file(p / "stage1-pretrain" / "final" / "model.safetensors") for p in (out, calm))
    assert all(bool((hit[k] == ref[k]).all()) for k in ref)
