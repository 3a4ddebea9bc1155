"""The loopback rendezvous of local training groups: rank 0's store listens on 127.0.0.1 only,
where torch's own store listens on every interface."""

import os
from datetime import timedelta

import psutil
import pytest

pytest.importorskip("torch")


def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process().net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_the_store_of_a_local_group_listens_on_loopback_only(monkeypatch):
    import torch.distributed as dist

    from cot_ray.train import rendezvous

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the workers' variables stay in this test
    everywhere = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=10))
    assert _listening(everywhere.port) - {"127.0.0.1"}, "torch's own store listens beyond loopback"

    port = rendezvous._listen()
    rendezvous._loopback_env(port)
    store, rank, world_size = next(rendezvous._loopback_rendezvous(
        f"{rendezvous.SCHEME}://127.0.0.1:{port}?rank=0&world_size=1", timeout=timedelta(seconds=10)))
    store.set("k", "v")
    assert (store.get("k"), rank, world_size) == (b"v", 0, 1)
    assert _listening(port) == {"127.0.0.1"}
    assert (os.environ["MASTER_ADDR"], os.environ["GLOO_SOCKET_IFNAME"]) == ("127.0.0.1",
                                                                             rendezvous.loopback_interface())
    assert rendezvous._listener is None  # the store owns the socket now


def test_local_runs_get_the_loopback_backend_and_clusters_ray_trains_own(monkeypatch):
    from ray.train.torch import TorchConfig

    from cot_ray.train.rendezvous import LoopbackTorchConfig, torch_config

    monkeypatch.setenv("COT_RAY_LOOPBACK", "1")
    assert isinstance(torch_config(use_gpu=False), LoopbackTorchConfig) and torch_config(True).backend == "nccl"
    monkeypatch.delenv("COT_RAY_LOOPBACK")
    config = torch_config(use_gpu=False)
    assert type(config) is TorchConfig and config.backend == "gloo"
