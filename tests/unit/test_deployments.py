"""The deployment assets agree with the code: KubeRay manifests, the Serve config, jobs/ and images.

Nothing here needs a Kubernetes cluster; each test pins a fact that a cluster would only reveal
at run time (a wrong import path, a job file that moved, a worker group that lost its GPUs).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deployments"
APP_DIR = "/app"  # where docker/Dockerfile.{gpu,cpu} put the repository (their WORKDIR)
RAY_VERSION = "2.60.0"


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _groups(cluster_spec: dict) -> dict[str, dict]:
    return {g["groupName"]: g for g in cluster_spec["workerGroupSpecs"]}


def _container(group: dict) -> dict:
    (container,) = group["template"]["spec"]["containers"]
    return container


def _custom_resources(group: dict) -> dict:
    """rayStartParams.resources as ``ray start`` gets it: KubeRay pastes the value into a shell command."""
    (arg,) = shlex.split(f"--resources={group['rayStartParams'].get('resources', '{}')}")
    return json.loads(arg.removeprefix("--resources="))


def _in_image(path: str) -> Path:
    """A path inside the image, mapped back to this checkout."""
    assert path.startswith(APP_DIR + "/"), f"{path} is not under the image's {APP_DIR}"
    return ROOT / path[len(APP_DIR) + 1:]


def test_every_manifest_loads_with_its_kind():
    kinds = {"raycluster.yaml": "RayCluster", "rayjob.yaml": "RayJob", "rayservice.yaml": "RayService"}
    for name, kind in kinds.items():
        doc = _load(name)
        assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind, name
        assert doc["metadata"]["name"]
    assert {p.name for p in DEPLOY.glob("*.yaml")} == {*kinds, "verifier.yaml"}


def test_raycluster_has_separate_gpu_groups_for_training_and_rollout():
    spec = _load("raycluster.yaml")["spec"]
    assert spec["rayVersion"] == RAY_VERSION and spec["enableInTreeAutoscaling"] is True
    groups = _groups(spec)
    assert len(groups) == len(spec["workerGroupSpecs"]), "worker group names must be unique"
    trainer, rollout = groups["trainer"], groups["rollout"]
    assert trainer is not rollout
    for name, g in (("trainer", trainer), ("rollout", rollout)):
        # each group carries its own replica settings, so the autoscaler and `kubectl patch` size them apart
        assert {"replicas", "minReplicas", "maxReplicas"} <= g.keys(), name
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], name
        limits = _container(g)["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, name
        assert _custom_resources(g) == {name: 1}, name
        assert _container(g)["image"] == "cot-ray:gpu"
    assert rollout["maxReplicas"] > trainer["maxReplicas"], "rollout is the group that scales out"


def test_rayStartParams_are_strings_and_head_hosts_the_jobs_api():
    for name in ("raycluster.yaml", "rayservice.yaml"):
        doc = _load(name)
        spec = doc["spec"].get("rayClusterConfig", doc["spec"])
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            assert all(isinstance(v, str) for v in group["rayStartParams"].values()), (name, group)
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"  # the pod network: behind the token below
        ports = {p["name"]: p["containerPort"] for p in _container(head)["ports"]}
        assert ports["dashboard"] == 8265 and ports["gcs"] == 6379, name


def test_rayjob_runs_the_pipeline_job_on_the_raycluster_spec():
    job = _load("rayjob.yaml")["spec"]
    assert job["shutdownAfterJobFinishes"] is True
    assert job["rayClusterSpec"] == _load("raycluster.yaml")["spec"], "keep rayjob.yaml's cluster = raycluster.yaml's"
    argv = shlex.split(job["entrypoint"])
    assert argv[0] == "python"
    script = _in_image(argv[1])
    assert script == ROOT / "jobs" / "run.py" and script.is_file(), script
    assert argv[2] == "pipeline"
    opts = dict(zip(argv[3::2], argv[4::2]))
    assert set(opts) == {"--config", "--out"}
    from cot_ray.config import load_config

    load_config(_in_image(opts["--config"]))  # exists and validates
    assert opts["--out"].startswith("/data/"), "the run folder must be on the shared volume"
    mounts = {m["mountPath"] for g in _groups(job["rayClusterSpec"]).values() for m in _container(g)["volumeMounts"]}
    assert "/data" in mounts


def test_dockerfiles_put_the_repository_where_the_manifests_expect_it():
    for name in ("Dockerfile.gpu", "Dockerfile.cpu"):
        text = (ROOT / "docker" / name).read_text()
        assert re.search(rf"^WORKDIR {APP_DIR}$", text, re.M), name
        for folder in ("jobs", "configs", "cot_ray"):
            assert re.search(rf"^COPY .*\b{folder} \./{folder}$", text, re.M), (name, folder)
    assert f"rayproject/ray:{RAY_VERSION}-" in (ROOT / "docker" / "Dockerfile.gpu").read_text()


def test_rayservice_serves_the_verifier_app_of_verifier_yaml():
    local = _load("verifier.yaml")
    service = _load("rayservice.yaml")["spec"]
    serve_config = yaml.safe_load(service["serveConfigV2"])
    assert serve_config["applications"] == local["applications"]
    # inside a pod Serve must listen beyond loopback, on the port the head exposes
    assert serve_config["http_options"] == {"host": "0.0.0.0", "port": local["http_options"]["port"]}
    assert local["http_options"]["host"] == "127.0.0.1"
    head = service["rayClusterConfig"]["headGroupSpec"]
    ports = {p["name"]: p["containerPort"] for p in _container(head)["ports"]}
    assert ports["serve"] == local["http_options"]["port"]
    groups = [head, *service["rayClusterConfig"]["workerGroupSpecs"]]
    assert {_container(g)["image"] for g in groups} == {"cot-ray:cpu"}
    # every pod starts Ray with Serve's HAProxy ingress, exactly as `--ingress haproxy` does locally
    from cot_ray.verify.serve import INGRESS

    for g in groups:
        env = {e["name"]: e["value"] for e in _container(g).get("env", [])}
        assert INGRESS["haproxy"].items() <= env.items(), g.get("groupName", "head")


@pytest.mark.parametrize("manifest", ["verifier.yaml", "rayservice.yaml"])
def test_serve_import_path_resolves_and_its_args_validate(manifest):
    doc = _load(manifest)
    config = yaml.safe_load(doc["spec"]["serveConfigV2"]) if "spec" in doc else doc
    for app in config["applications"]:
        module_name, _, attr = app["import_path"].partition(":")
        assert module_name.startswith("cot_ray.")
        module = importlib.import_module(module_name)
        builder = getattr(module, attr)
        assert callable(builder)
        module.VerifierAppArgs.model_validate(app.get("args", {}))
        deployment_names = {d["name"] for d in app.get("deployments", [])}
        assert deployment_names <= {module.Verifier.name}


def test_every_job_reaches_a_cot_ray_subcommand():
    jobs = _run_py().JOBS
    assert set(jobs) >= {"pipeline", "pretrain", "sft", "reflective-sft", "rl", "rollout", "serve-verifier"}
    for job in jobs:
        # --help parses the subcommand the job hands to cot_ray.cli.main, without starting Ray
        result = _job(job, "--help")
        assert result.returncode == 0, (job, result.stderr[-2000:])
        assert result.stdout.startswith("usage: cot-ray "), job


def test_the_entrypoint_names_its_jobs_and_rejects_others():
    helped = _job("--help")
    assert helped.returncode == 0 and all(job in helped.stdout for job in _run_py().JOBS)
    for argv in ([], ["chess"]):
        result = _job(*argv)
        assert result.returncode == 2, argv
        assert "usage: jobs/run.py {pipeline," in result.stderr and "error:" in result.stderr, argv


def _job(*argv: str) -> subprocess.CompletedProcess:
    """``python jobs/run.py ARGV`` from another folder, as a Ray job's driver runs it."""
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "run.py"), *argv], capture_output=True, text=True,
                          timeout=60, cwd="/")


def _run_py():
    spec = importlib.util.spec_from_file_location("jobs_run", ROOT / "jobs" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cluster_specs() -> dict[str, dict]:
    return {"raycluster.yaml": _load("raycluster.yaml")["spec"],
            "rayjob.yaml": _load("rayjob.yaml")["spec"]["rayClusterSpec"],
            "rayservice.yaml": _load("rayservice.yaml")["spec"]["rayClusterConfig"]}


def test_every_cluster_asks_for_ray_token_auth():
    """The dashboard (and Jobs API, GCS, client port) listen on the pod network, so every cluster
    has KubeRay generate a token and set RAY_AUTH_MODE=token in each pod; nothing disables it."""
    for name, spec in _cluster_specs().items():
        assert spec.get("authOptions") == {"mode": "token"}, name
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for group in groups:
            env = {e["name"]: e.get("value") for e in _container(group).get("env", [])}
            assert "RAY_AUTH_MODE" not in env and "RAY_AUTH_TOKEN" not in env, (name, group.get("groupName", "head"))


INSECURE = "VLLM_ALLOW_INSECURE_SERIALIZATION"


def test_no_insecure_vllm_serialization_ships():
    """vLLM's pickle fallback is off everywhere: no manifest or image sets it, and no code does
    (as a string literal: an environment key); the rollout path does not need it (engines.py)."""
    for path in [*DEPLOY.glob("*.yaml"), *(ROOT / "docker").iterdir()]:
        assert INSECURE not in path.read_text(), path
    literal = re.compile(rf"[\"']{INSECURE}[\"']")
    for folder in ("cot_ray", "jobs", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not literal.search(path.read_text()), path
