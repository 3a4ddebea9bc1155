"""Chaos run: the pipeline on a two-node local Ray cluster, killing something every 20-40 s.

Runs a config twice on the same cluster shape, in one process: undisturbed, then while a seeded
random schedule SIGKILLs, every ``--every`` seconds, one of

    rollout   a vLLM rollout worker (ray::RolloutWorker)
    train     a Ray Train worker of stages I-III or of the RL learner (ray::RayTrainWorker)
    scorer    the reward actor or the stage-III verifier actor (ray::RewardModel, ray::ExpertVerifier)
    node      the whole worker node (its raylet and every process on it); a fresh node joins in
              its place a few seconds later, as an autoscaler would bring one

(only kinds with a live target at that moment are drawn). Then it checks that the disturbed run

- finished (exit 0) with every stage at its final step (metrics rows 1..N, final/ written);
- evaluated each held-out problem exactly once per (policy, task, level, mode), the same
  problems as the undisturbed run (rows lost and duplicated: must be 0);
- reached accuracies inside the undisturbed run's 95% intervals;

and prints the kills survived by kind, the wall times, and the time lost to recovery.

    python bench/chaos.py                                    # configs/chaos.yaml, seed 0
    python bench/chaos.py --config configs/smoke.yaml --every 20 40 --seed 3

The head node (1 CPU) runs the driver, Ray Train's controller and the RL learner's queues; the
worker node (1 CPU) takes what Ray puts there (a training worker, the rollout worker, scorers).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cot_ray.layout import STAGES, TRAINED, RunLayout

KINDS = {"rollout": ("ray::RolloutWorker",), "train": ("ray::RayTrainWorker",),
         "scorer": ("ray::RewardModel", "ray::ExpertVerifier")}
HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 4}
NODE = {"num_cpus": 1, "object_store_memory": 300 * 1024 ** 2}


class Chaos:
    """The cluster, and the killer thread of the disturbed run."""

    def __init__(self, seed: int, every: tuple[float, float]) -> None:
        from ray.cluster_utils import Cluster

        from cot_ray.loopback import start_loopback

        start_loopback()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": 300 * 1024 ** 2, "_system_config": HEALTH})
        self.worker = self.cluster.add_node(**NODE)
        self.rng, self.every = random.Random(seed), every
        self.kills: list[dict] = []

    def targets(self) -> dict[str, list]:
        """Live processes of each kind (descendants of this process: the cluster's raylets' workers)."""
        import psutil

        found: dict[str, list] = {k: [] for k in KINDS}
        for p in psutil.Process().children(recursive=True):
            try:
                name = " ".join(p.cmdline()[:1])
            except psutil.Error:
                continue
            for kind, markers in KINDS.items():
                if any(name.startswith(m) for m in markers):
                    found[kind].append(p)
        found["node"] = [self.worker]
        return {k: v for k, v in found.items() if v}

    def kill_one(self) -> None:
        targets = self.targets()
        kind = self.rng.choice(sorted(targets))
        victim = self.rng.choice(targets[kind])
        t = time.time()
        if kind == "node":
            self.cluster.remove_node(self.worker, allow_graceful=False)
            time.sleep(5)
            self.worker = self.cluster.add_node(**NODE)
            what = "worker node"
        else:
            what = " ".join(victim.cmdline()[:1])
            os.kill(victim.pid, signal.SIGKILL)
        self.kills.append({"kind": kind, "what": what, "at": t})
        print(f"[chaos] {time.strftime('%H:%M:%S')} killed {kind}: {what}", flush=True)

    def run_disturbed(self, cmd: list[str], env: dict, log: Path) -> tuple[int, float]:
        """Run the pipeline while killing something every ``every`` seconds (here, in the main
        thread: removing a node needs it); (exit code, wall seconds)."""
        t0 = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            next_kill = time.perf_counter() + self.rng.uniform(*self.every)
            while proc.poll() is None:
                time.sleep(0.5)
                if time.perf_counter() >= next_kill and proc.poll() is None:
                    try:
                        self.kill_one()
                    except Exception as err:  # a process that exited by itself meanwhile: next time
                        print(f"[chaos] kill failed: {err!r}", flush=True)
                    next_kill = time.perf_counter() + self.rng.uniform(*self.every)
        return proc.returncode, time.perf_counter() - t0


def pipeline_command(config: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", config, "--out", str(out)]


def undisturbed(cmd: list[str], env: dict, log: Path, record: Path) -> float:
    """The undisturbed run's wall seconds (run now, or reused from ``record`` if it finished)."""
    if record.exists():
        wall = json.loads(record.read_text())["wall_s"]
        print(f"reusing the undisturbed run ({record}): {wall:.0f}s", flush=True)
        return wall
    shutil.rmtree(cmd[-1], ignore_errors=True)  # a fresh run, not a resumed one
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    assert rc == 0, f"the undisturbed run failed: see {log}"
    wall = time.perf_counter() - t0
    record.write_text(json.dumps({"wall_s": wall}))
    return wall


def stage_rows(run: RunLayout) -> dict[str, list[int]]:
    """Per stage that logged metrics: the step (or update) of every metrics row."""
    rows = {}
    for stage in STAGES:
        if run.metrics(stage).exists():
            with open(run.metrics(stage), newline="") as f:
                rows[stage] = [int(float(r.get("step") or r["update"])) for r in csv.DictReader(f)]
    return rows


def same_weights(a: RunLayout, b: RunLayout, stage: str) -> bool:
    """Whether a stage's final models in two runs are bit for bit equal."""
    from safetensors.torch import load_file

    try:
        x, y = (load_file(run.final(stage) / "model.safetensors") for run in (a, b))
    except FileNotFoundError:
        return False
    return x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)


def eval_questions(run: RunLayout) -> dict[str, list[str]]:
    """Per evaluation file: the questions it holds, in order."""
    return {p.name: [json.loads(line)["question"] for line in p.open()] for p in sorted(run.eval_dir.glob("*.jsonl"))}


def accuracies(run: RunLayout) -> dict[str, tuple[int, int]]:
    """Per evaluation file: (correct, total), each file read once."""
    out = {}
    for p in sorted(run.eval_dir.glob("*.jsonl")):
        rows = [json.loads(line)["correct"] for line in p.open()]
        out[p.name] = (sum(rows), len(rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/chaos.yaml")
    ap.add_argument("--out", default="runs/bench-chaos")
    ap.add_argument("--every", nargs=2, type=float, default=[20.0, 40.0], metavar=("MIN_S", "MAX_S"),
                    help="seconds between kills, drawn uniformly")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="rerun the undisturbed run even if --out holds one")
    args = ap.parse_args()
    from cot_ray.config import load_config
    from cot_ray.stats import wilson

    config = load_config(args.config)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        (out / "undisturbed.json").unlink(missing_ok=True)
    chaos = Chaos(args.seed, tuple(args.every))
    env = {**os.environ, "RAY_ADDRESS": chaos.cluster.address}
    base, hit = RunLayout(out / "undisturbed"), RunLayout(out / "chaos")
    try:
        print(f"cluster {chaos.cluster.address}: head + worker node; undisturbed run ...", flush=True)
        wall0 = undisturbed(pipeline_command(args.config, base.root), env, out / "undisturbed.log",
                            out / "undisturbed.json")
        print(f"undisturbed: {wall0:.0f}s; disturbed run with a kill every {args.every[0]:.0f}-{args.every[1]:.0f}s "
              "...", flush=True)
        shutil.rmtree(hit.root, ignore_errors=True)
        rc1, wall1 = chaos.run_disturbed(pipeline_command(args.config, hit.root), env, out / "chaos.log")
    finally:
        chaos.cluster.shutdown()

    problems = []
    if rc1 != 0:
        problems.append(f"the disturbed run failed (exit {rc1}): see {out / 'chaos.log'}")
    want = dict(zip(TRAINED, (config.pretrain.steps, config.sft.steps, config.reflective_sft.steps), strict=True))
    rows = stage_rows(hit)
    for stage in stage_rows(base):
        got = rows.get(stage, [])
        if not got or got != list(range(1, got[-1] + 1)) or not hit.is_complete(hit.final(stage)):
            problems.append(f"{STAGES[stage]}: metrics rows are not 1..N once each, or no final/")
        elif stage in want and got[-1] != want[stage]:
            problems.append(f"{STAGES[stage]} stopped at step {got[-1]} of {want[stage]}")
    same = {STAGES[stage]: same_weights(base, hit, stage) for stage in stage_rows(base)}
    q0, q1 = eval_questions(base), eval_questions(hit)
    lost = sum(len(set(q) - set(q1.get(name, []))) for name, q in q0.items())
    duplicated = sum(len(q) - len(set(q)) for q in q1.values())
    outside = []
    acc0, acc1 = accuracies(base), accuracies(hit)
    for name, (k, n) in acc0.items():
        lo, hi = wilson(k, n)
        k1, n1 = acc1.get(name, (0, 0))
        if n1 and not lo <= k1 / n1 <= hi:
            outside.append(f"{name}: {k1}/{n1} outside [{100 * lo:.1f}, {100 * hi:.1f}]")
    by_kind = Counter(k["kind"] for k in chaos.kills)
    print(f"\nkills survived: {len(chaos.kills) if rc1 == 0 else 'run failed'} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))})")
    print(f"wall: undisturbed {wall0:.0f}s, disturbed {wall1:.0f}s; time lost to recovery {wall1 - wall0:.0f}s "
          f"({100 * (wall1 - wall0) / wall0:.0f}% of the undisturbed run)")
    print(f"evaluation rows lost {lost}, duplicated {duplicated} (over {len(q0)} files, "
          f"{sum(len(q) for q in q0.values())} rows)")
    print(f"accuracies outside the undisturbed run's 95% interval: {len(outside)} of {len(acc0)}")
    print("final weights bit for bit those of the undisturbed run: "
          + ", ".join(f"{stage} {'yes' if ok else 'no'}" for stage, ok in same.items()))
    for line in outside + problems:
        print("  " + line)
    (out / "kills.json").write_text(json.dumps(chaos.kills, indent=1))
    sys.exit(1 if problems or lost or duplicated else 0)


if __name__ == "__main__":
    main()
