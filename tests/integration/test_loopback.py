"""A local run listens on loopback only: Ray's own servers, the workers, a training stage's
process group (torch's rendezvous store, Gloo), the Serve replicas and HAProxy's stats and metrics
ports. Only ``--host`` opens the verifier's port to other machines."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from procs import is_loopback, listening_addresses

from cot_ray.verify.serve import free_port

pytestmark = pytest.mark.integration


def _local_env() -> dict[str, str]:
    """This environment, less anything that would make the command join another Ray."""
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}


def _serve_and_list(host: str, ingress: str) -> tuple[int, list[tuple[str, int, str]]]:
    """Start ``cot-ray serve verifier``, wait for it to answer, list what its processes listen on."""
    port = free_port()
    cmd = [sys.executable, "-m", "cot_ray.cli", "serve", "verifier", "--host", host, "--port", str(port),
           "--ingress", ingress]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=_local_env())
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline, "the verifier did not answer"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        time.sleep(2)  # HAProxy's stats/metrics frontends start with its first config
        return port, listening_addresses(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_local_verifier_listens_on_loopback_only():
    port, sockets = _serve_and_list("127.0.0.1", "haproxy")
    names = {name for _, _, name in sockets}
    assert {"gcs_server", "raylet", "haproxy"} <= names, names  # what was looked at
    assert any(p == port for _, p, _ in sockets) and any(p == 8404 for _, p, _ in sockets), sockets
    assert [s for s in sockets if not is_loopback(s[0])] == []


def test_only_the_verifier_ports_open_when_host_asks_for_it():
    port, sockets = _serve_and_list("0.0.0.0", "haproxy")
    opened = {(p, name) for ip, p, name in sockets if not is_loopback(ip)}
    assert (port, "haproxy") in opened, sockets
    # --host is Serve's HTTP host: besides HAProxy's port it reaches the HTTP servers behind it (the
    # replica's own, which HAProxy on other nodes must reach, and Serve's fallback proxy). HAProxy's
    # stats and metrics ports and all of Ray's own servers stay on loopback.
    assert {p for p, name in opened if name == "haproxy"} == {port}, opened
    assert all(name == "haproxy" or name == "ray::ProxyActor" or name.startswith("ray::ServeReplica")
               for _, name in opened), opened


def test_a_training_stage_listens_on_loopback_only(tmp_path):
    """While stage I trains (2 Gloo workers, the smoke config), every socket the run listens on,
    the rank-0 rendezvous store and Gloo's included, is on loopback."""
    cmd = [sys.executable, "-m", "cot_ray.cli", "pretrain", "--config", "configs/smoke.yaml", "--out",
           str(tmp_path / "run"), "--set", "corpus.tasks=[mult]", "--set", "pretrain.steps=40"]
    log = open(tmp_path / "log.txt", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_local_env())
    seen: set[tuple[str, int, str]] = set()
    try:
        while proc.poll() is None:
            seen |= set(listening_addresses(proc.pid))
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    assert proc.returncode == 0, log.read()[-3000:]
    trainers = {s for s in seen if s[2].startswith("ray::RayTrainWorker")}
    assert trainers, seen  # what was looked at: the workers' own sockets (the store on rank 0)
    assert [s for s in seen if not is_loopback(s[0])] == []
