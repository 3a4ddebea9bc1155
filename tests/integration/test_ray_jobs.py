"""The smoke pipeline submitted as a Ray job (``jobs/run.py pipeline``) to a real Ray head.

This is how the pipeline runs on a cluster: ``ray start --head`` with the dashboard (it hosts the
Jobs API), then a job whose working dir is this repository. The head runs in a temp dir of its own
on loopback ports of its own, so it cannot be mistaken for another Ray on this machine (``ray.init()``
finds clusters through ``<temp-dir>/ray_current_cluster``), and it is stopped by signalling the
processes it started, never with ``ray stop``, which stops every Ray on the machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cot_ray.verify.serve import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Kept out of the uploaded working dir (Ray also honours .gitignore; this makes it explicit).
EXCLUDES = [".venv", "runs", "corpus", "build", ".git", "**/__pycache__", "*.egg-info", ".pytest_cache",
            ".ruff_cache", ".hypothesis", "bench"]
JOB_TIMEOUT_S = 1500  # 2-4 min on 2 idle cores; 856 s measured beside another 2-core training run
START_TIMEOUT_S = 120


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class RayHead:
    """A ``ray start --head --block`` in its own process session and temp dir.

    ``--block`` keeps the starting process as the parent of the head's daemons: SIGTERM to it shuts
    the head down as a pod's ``ray start`` would be, and its reaper kills the rest if it dies.
    """

    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rayjob-", dir="/tmp"))  # short: socket paths
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self.log = self.temp_dir / "ray-start.log"
        self.env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
                    # the job's `python` is this interpreter, as it is the image's python on a cluster
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    # no Serve traffic to drain: stop at once instead of waiting 30 s on SIGTERM
                    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.proc: subprocess.Popen | None = None
        self._seen: dict[int, float] = {}  # pid -> create_time of every process seen in our tree

    def start(self) -> None:
        cmd = [str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}", "--num-cpus=2", "--num-gpus=0",
               f"--temp-dir={self.temp_dir}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", f"--dashboard-agent-listen-port={free_port()}",
               f"--ray-client-server-port={free_port()}"]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.temp_dir)

    def wait_for_jobs_api(self):
        """The JobSubmissionClient once the Jobs API answers, else None (the dashboard did not come up)."""
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.remember_tree()
            if self.proc.poll() is not None:
                raise AssertionError(f"ray start exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                client = JobSubmissionClient(self.url)
                client.list_jobs()
                return client
            except Exception:  # not up yet: connection refused, 5xx while the job agent starts
                time.sleep(2)
        return None

    def dashboard_log(self) -> str:
        logs = sorted(self.temp_dir.glob("session_*/logs/dashboard.*"))
        return "\n".join(f"--- {p.name}\n{_tail(p, 1500)}" for p in logs) or _tail(self.log)

    def remember_tree(self) -> None:
        """Record every process under ``ray start`` (workers, job drivers, engines) while it is alive."""
        import psutil

        if self.proc is None:
            return
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self._seen.setdefault(p.pid, p.create_time())
        except psutil.NoSuchProcess:
            pass

    def stop(self) -> None:
        """SIGTERM ``ray start`` (graceful head shutdown), then SIGKILL whatever it left behind."""
        import psutil

        self.remember_tree()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        survivors = []
        for pid, created in self._seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created:  # the same process, not a reused pid
                    survivors.append(p)
            except psutil.NoSuchProcess:
                pass
        for p in survivors:
            try:
                p.kill()
            except psutil.NoSuchProcess:  # it exited on its own since the check above
                pass
        psutil.wait_procs(survivors, timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    if importlib.util.find_spec("aiohttp") is None or importlib.util.find_spec("ray.dashboard") is None:
        pytest.skip("the Ray Jobs API needs ray[default] (dashboard, aiohttp), which is not installed")
    head = RayHead()
    try:
        head.start()
        client = head.wait_for_jobs_api()
        if client is None:
            pytest.skip(f"the Ray dashboard (Jobs API) did not answer at {head.url} within "
                        f"{START_TIMEOUT_S}s; its log:\n{head.dashboard_log()}")
        yield head, client
    finally:
        head.stop()


def test_smoke_pipeline_as_a_ray_job(ray_head, tmp_path):
    from ray.job_submission import JobStatus

    head, client = ray_head
    out = tmp_path / "run"
    t0 = time.monotonic()
    job_id = client.submit_job(
        entrypoint=f"python jobs/run.py pipeline --config configs/smoke.yaml --out {out}",
        runtime_env={"working_dir": str(ROOT), "excludes": EXCLUDES},
    )
    status = client.get_job_status(job_id)
    while not status.is_terminal() and time.monotonic() - t0 < JOB_TIMEOUT_S:
        head.remember_tree()
        time.sleep(3)
        status = client.get_job_status(job_id)
    if not status.is_terminal():
        client.stop_job(job_id)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, (
        f"job {job_id} is {status} after {time.monotonic() - t0:.0f}s; last log lines:\n{logs[-6000:]}")
    report = out / "report.md"
    assert report.exists(), f"no {report}; log:\n{logs[-4000:]}"
    assert "## stage3-reflective-sft" in report.read_text()
    assert f"report: {report}" in logs  # the CLI's last line, printed by the job's driver
    info = client.get_job_info(job_id)
    assert info.entrypoint.startswith("python jobs/run.py pipeline")
