"""Verifier service throughput and latency over loopback HTTP, with and without ``@serve.batch``.

    .venv/bin/python bench/verifier_service.py [--items 1 16] [--seconds 5] [--clients 1 16 64]

Deploys the Serve app on a local Ray, then for each client count runs that many closed-loop async
clients (one keep-alive HTTP/1.1 connection each) for a fixed time, each request carrying
``--items`` steps (half expert steps, half perturbed; mult and Sudoku mixed): one step per request
(the unit the service's targets name, and the case ``@serve.batch`` exists for) and 16 (about one
id-hard Sudoku trajectory: its expert traces take 12 steps on average, up to 30). Prints
requests/s, step verifications/s and p50/p99 request latency for the batched and the unbatched app,
behind each ingress (``--ingress``): Serve's default Python proxy actor, and HAProxy (Serve's
high-throughput mode, ``RAY_SERVE_ENABLE_HA_PROXY=1`` + ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``:
HAProxy forwards HTTP straight to the replica's own server). Each ingress runs in a fresh
subprocess with its own Ray, because Serve reads these settings when Ray starts; everything is
measured in the same run on the same machine (clients, ingress and replica share its cores).

The load generator shares the cores with the service, so it is kept light: requests are encoded
once, and each connection is a small asyncio protocol on uvloop that writes the request bytes and
reads the status line and ``Content-Length`` body (``--client raw``, about 20 us a request).
``--client aiohttp`` (about 120 us a request) shows what a general-purpose client costs: on 2
cores its CPU comes out of the service's share, and its event loop's backlog is counted as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import uvloop
from ray import serve

from cot_ray.data.corpus import expert_trace
from cot_ray.data.splits import make_problem
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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; ``request`` sends encoded bytes and returns the body."""

    def __init__(self) -> None:
        self.closed = False
        self.buffer = b""
        self.reply: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.reply is None:
            return
        head = self.buffer[:head_end].lower()
        start = head.find(b"content-length:") + len(b"content-length:")
        length = int(head[start:head.find(b"\r\n", start)])
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        body, self.buffer = self.buffer[head_end + 4:head_end + 4 + length], self.buffer[head_end + 4 + length:]
        if status != 200:
            self.reply.set_exception(RuntimeError(f"HTTP {status}: {body[:200]!r}"))
        else:
            self.reply.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError(f"connection closed: {exc}"))

    async def request(self, data: bytes) -> bytes:
        if self.closed:
            raise ConnectionError("connection closed while idle")
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.reply


def _encode(url: str, body: dict) -> bytes:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    return (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


async def raw_client(url: str, requests: list[bytes], stop: float, latencies: list[float],
                     max_requests: int) -> None:
    """Closed loop on one connection, sending requests encoded by ``_encode``. A connection the
    server closes (HAProxy does when it reloads its config as replicas come and go) is reopened and
    the request sent again, like any HTTP client does for a kept-alive connection; the retry counts
    in that request's latency."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Connection, parts.hostname, parts.port)
    try:
        i = 0
        while time.perf_counter() < stop and len(latencies) < max_requests:
            t0 = time.perf_counter()
            for attempt in range(3):
                try:
                    await conn.request(requests[i % len(requests)])
                    break
                except ConnectionError:
                    if attempt == 2:
                        raise
                    conn.transport.close()
                    _, conn = await loop.create_connection(_Connection, parts.hostname, parts.port)
            latencies.append(time.perf_counter() - t0)
            i += 1
    finally:
        conn.transport.close()


async def aiohttp_client(url: str, bodies: list[dict], stop: float, latencies: list[float],
                         max_requests: int, session: aiohttp.ClientSession) -> None:
    i = 0
    while time.perf_counter() < stop and len(latencies) < max_requests:
        t0 = time.perf_counter()
        async with session.post(url, json=bodies[i % len(bodies)]) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
        latencies.append(time.perf_counter() - t0)
        i += 1


async def measure(url: str, bodies: list[dict], clients: int, seconds: float, max_requests: int,
                  kind: str) -> tuple[int, float, list[float]]:
    """Run ``clients`` closed-loop clients for ``seconds`` (or ``max_requests``) after a warm-up.

    Raw requests are encoded here, once, so no encoding falls inside the measured time."""
    encoded = [_encode(url, body) for body in bodies] if kind == "raw" else []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        def run(stop: float, latencies: list[float], k: int) -> asyncio.Future:
            if kind == "raw":
                return raw_client(url, encoded[k:] + encoded[:k], stop, latencies, max_requests)
            return aiohttp_client(url, bodies[k:] + bodies[:k], stop, latencies, max_requests, session)

        warm: list[float] = []
        await asyncio.gather(*(run(time.perf_counter() + 0.5, warm, k) for k in range(clients)))
        latencies: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(run(t0 + seconds, latencies, k) for k in range(clients)))
        return len(latencies), time.perf_counter() - t0, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, nargs="+", default=[1, 16], help="steps per request")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--max-requests", type=int, default=200_000, help="per row, on top of --seconds")
    ap.add_argument("--ingress", nargs="+", choices=sorted(INGRESS), default=sorted(INGRESS, reverse=True))
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--batching", nargs="+", choices=("off", "on"), default=["off", "on"], help="@serve.batch")
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="load generator (see above)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        print(f"{'ingress':8} {'batching':9} {'items':>5} {'clients':>7} {'requests':>8} {'req/s':>7} {'items/s':>8} "
              f"{'p50 ms':>7} {'p99 ms':>7}", flush=True)
        for ingress in args.ingress:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", "--ingress", ingress], check=True)
        return
    pool = item_pool()
    rng = random.Random(1)
    bodies = {k: [{"items": rng.sample(pool, k)} for _ in range(256)] for k in args.items}
    port = 0  # a free port for the first app; the second is redeployed behind the same one
    try:
        for batching in (mode == "on" for mode in args.batching):
            base = start_verifier(port=port, replicas=args.replicas, batching=batching, name="bench",
                                  ingress=args.ingress[0])
            port, url = urlsplit(base).port or 0, base + "/v1/verify"
            for items, clients in itertools.product(args.items, args.clients):
                n, elapsed, lat = uvloop.run(
                    measure(url, bodies[items], clients, args.seconds, args.max_requests, args.client))
                q = statistics.quantiles(lat, n=100)
                print(f"{args.ingress[0]:8} {'on' if batching else 'off':9} {items:5d} {clients:7d} {n:8d} "
                      f"{n / elapsed:7.0f} {n * items / elapsed:8.0f} {q[49] * 1e3:7.1f} {q[98] * 1e3:7.1f}",
                      flush=True)
    finally:
        serve.shutdown()


if __name__ == "__main__":
    main()
