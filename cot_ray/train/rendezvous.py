"""How the workers of a Ray Train group (stages I-III, the RL learner) find each other, on loopback
in a local run.

Ray Train's torch backend has rank 0 host torch's TCPStore, the group's unauthenticated key-value
rendezvous, and torch binds that server to every interface whatever address it is given; Gloo
and NCCL then bind to the interface the host name resolves to. In a local run
(:func:`cot_ray.loopback.start_loopback`) :func:`torch_config` swaps in a backend that opens
rank 0's store on a socket bound to 127.0.0.1 (torch takes a listening socket as
``master_listen_fd``) and names the loopback interface to Gloo and NCCL. On a cluster the workers
must reach each other, so Ray Train's own backend is kept.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group, _TorchBackend

SCHEME = "cot-ray-loopback"
"""The torch rendezvous URL scheme of :func:`_loopback_rendezvous`."""
_listener: socket.socket | None = None
"""Rank 0's listening socket, from :func:`_listen` until its store takes it over."""


def torch_config(use_gpu: bool) -> TorchConfig:
    """The process-group config of a Ray Train group: NCCL on GPUs, else Gloo; on loopback when local."""
    backend = "nccl" if use_gpu else "gloo"
    return LoopbackTorchConfig(backend=backend) if os.environ.get("COT_RAY_LOOPBACK") == "1" else TorchConfig(
        backend=backend)


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """:class:`TorchConfig` whose rendezvous listens on 127.0.0.1 only (every worker on this machine)."""

    @property
    def backend_cls(self):
        return _LoopbackBackend


class _LoopbackBackend(_TorchBackend):
    """Ray Train's torch backend with the start-up below instead of ``env://`` on the node's IP
    (as Ray Train v2's, the default: the torch variables RANK, WORLD_SIZE, ... set first)."""

    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        import ray

        port = worker_group.execute_single(0, _listen)
        worker_group.execute(_loopback_env, port=port)
        worker_group.execute(_set_torch_distributed_env_vars)
        url = f"{SCHEME}://127.0.0.1:{port}"
        ray.get([worker_group.execute_single_async(
            rank, _setup_torch_process_group, backend=backend_config.backend, world_rank=rank,
            world_size=len(worker_group), init_method=url, timeout_s=backend_config.timeout_s)
            for rank in range(len(worker_group))])


def _listen() -> int:
    """On rank 0: a socket listening on 127.0.0.1, kept for the store; returns its port."""
    global _listener
    _listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    return _listener.getsockname()[1]


def _loopback_env(port: int) -> None:
    """On every worker: the rendezvous handler, and every address and interface on loopback."""
    import torch.distributed as dist

    try:
        dist.register_rendezvous_handler(SCHEME, _loopback_rendezvous)
    except RuntimeError:  # registered by an earlier group in this worker process
        pass
    interface = loopback_interface()
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": interface,
                       "NCCL_SOCKET_IFNAME": interface})


def _loopback_rendezvous(url: str, timeout: timedelta, **kwargs):
    """torch's rendezvous for :data:`SCHEME`: rank 0 serves the store on :data:`_listener`."""
    global _listener
    from urllib.parse import parse_qs, urlparse

    import torch.distributed as dist

    parsed = urlparse(url)
    query = {k: int(v[0]) for k, v in parse_qs(parsed.query).items()}
    rank, world_size = query["rank"], query["world_size"]
    fd = None
    if rank == 0:
        fd, _listener = _listener.detach(), None  # the store owns (and closes) the socket now
    store = dist.TCPStore("127.0.0.1", parsed.port, world_size, is_master=rank == 0, timeout=timeout,
                          master_listen_fd=fd)
    yield store, rank, world_size
    raise RuntimeError(f"{SCHEME}:// cannot rendezvous again")


def loopback_interface() -> str:
    """The name of the network interface holding 127.0.0.1 (``lo`` on Linux)."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == "127.0.0.1" for a in addresses):
            return name
    return "lo"
