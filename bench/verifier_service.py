"""Verifier service throughput and latency over loopback HTTP, with and without ``@serve.batch``.

    .venv/bin/python bench/verifier_service.py [--items 16] [--seconds 5] [--clients 1 16 64]

Deploys the Serve app on a local Ray, then for each client count runs that many closed-loop async
clients (aiohttp, one keep-alive connection each) for a fixed time, each request carrying
``--items`` steps (half expert steps, half perturbed; mult and Sudoku mixed). Prints requests/s,
step verifications/s and p50/p99 request latency for the batched and the unbatched app, behind
each ingress (``--ingress``): Serve's default Python proxy actor, and HAProxy (Serve's
high-throughput mode, ``RAY_SERVE_ENABLE_HA_PROXY=1`` + ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``:
HAProxy forwards HTTP straight to the replica's own server). Each ingress runs in a fresh
subprocess with its own Ray, because Serve reads these settings when Ray starts; everything is
measured in the same run on the same machine (clients, ingress and replica share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import aiohttp
from ray import serve

from cot_ray.data.corpus import expert_trace, make_problem
from cot_ray.tasks import get_task
from cot_ray.verify.serve import INGRESS, start_verifier


def item_pool(n_problems: int = 40, seed: int = 0) -> list[dict]:
    """Steps as a trained policy would send them: expert steps and perturbed (wrong) ones."""
    rng = random.Random(seed)
    pool = []
    for name, level in (("mult", "id-hard"), ("sudoku", "id-hard")):
        task = get_task(name)
        for i in range(n_problems):
            for state, step in expert_trace(task, make_problem(task, level, seed, i)):
                wrong = rng.random() < 0.5
                pool.append({"task": name, "state": state, "step": task.perturb_step(state, rng) if wrong else step,
                             "detailed": rng.random() < 0.5})
    return pool


async def client(session: aiohttp.ClientSession, url: str, bodies: list[dict], stop: float,
                 latencies: list[float], max_requests: int) -> None:
    i = 0
    while time.perf_counter() < stop and len(latencies) < max_requests:
        t0 = time.perf_counter()
        async with session.post(url, json=bodies[i % len(bodies)]) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
        latencies.append(time.perf_counter() - t0)
        i += 1


async def measure(url: str, bodies: list[dict], clients: int, seconds: float,
                  max_requests: int) -> tuple[int, float, list[float]]:
    """Run ``clients`` closed-loop clients for ``seconds`` (or ``max_requests``) after a warm-up."""
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm: list[float] = []
        await asyncio.gather(*(client(session, url, bodies, time.perf_counter() + 0.5, warm, max_requests)
                               for _ in range(clients)))
        latencies: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session, url, bodies[k:] + bodies[:k], t0 + seconds, latencies, max_requests)
                               for k in range(clients)))
        return len(latencies), time.perf_counter() - t0, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=16, help="steps per request")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--max-requests", type=int, default=20_000, help="per row, on top of --seconds")
    ap.add_argument("--ingress", nargs="+", choices=sorted(INGRESS), default=sorted(INGRESS, reverse=True))
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        print(f"{'ingress':8} {'batching':9} {'clients':>7} {'requests':>8} {'req/s':>7} {'items/s':>8} "
              f"{'p50 ms':>7} {'p99 ms':>7}", flush=True)
        for ingress in args.ingress:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", "--ingress", ingress], check=True)
        return
    pool = item_pool()
    rng = random.Random(1)
    bodies = [{"items": rng.sample(pool, args.items)} for _ in range(256)]
    port = 0  # a free port for the first app; the second is redeployed behind the same one
    try:
        for batching in (True, False):
            base = start_verifier(port=port, replicas=args.replicas, batching=batching, name="bench",
                                  ingress=args.ingress[0])
            port, url = urlsplit(base).port or 0, base + "/v1/verify"
            for clients in args.clients:
                n, elapsed, lat = asyncio.run(measure(url, bodies, clients, args.seconds, args.max_requests))
                q = statistics.quantiles(lat, n=100)
                print(f"{args.ingress[0]:8} {'on' if batching else 'off':9} {clients:7d} {n:8d} {n / elapsed:7.0f} "
                      f"{n * args.items / elapsed:8.0f} {q[49] * 1e3:7.1f} {q[98] * 1e3:7.1f}", flush=True)
    finally:
        serve.shutdown()


if __name__ == "__main__":
    main()
