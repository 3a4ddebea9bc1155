"""Keeping a local Ray on loopback: no port of a local run is reachable from other machines.

Three things in Ray listen on all interfaces by default, and each is turned off here:

- Ray's own servers (GCS, raylets, agents, every worker's gRPC server). Ray turns a node IP of
  127.0.0.1 passed to ``ray.init`` into the machine's routable address; with clusters
  "disabled" (Ray's own switch, meant for laptops: :data:`LOOPBACK_ENV`) the node IP stays
  127.0.0.1 and every server binds to it. Ray's child processes inherit the variable.
- Serve's HAProxy config template binds its stats page and Prometheus exporter to ``*``;
- each Serve replica binds its inter-deployment gRPC server to ``[::]``.

The last two are rewritten in the Ray worker processes (:func:`patch_worker`, run by the job's
``worker_process_setup_hook``) right after the module holding them is imported, so workers that
never touch Serve never import it. A Ray upgrade that moves the code is reported, not ignored.

The same hook makes HAProxy die with the Serve actor that spawned it (``PR_SET_PDEATHSIG``, as
Ray does for its own processes): Serve stops HAProxy when it shuts down cleanly, but when Ray is
stopped under it (``ray stop``, a killed process group) HAProxy would live on, holding the ports.

A fourth, torch's rendezvous store in every Ray Train group, is opened on 127.0.0.1 by the
group's backend (:mod:`cot_ray.train.rendezvous`), which :data:`LOOPBACK_ENV` switches on.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger(__name__)

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "COT_RAY_LOOPBACK": "1"}
"""Set in the driver before it starts Ray; ``COT_RAY_LOOPBACK`` tells the workers to patch."""

HAPROXY_BINDS = {"bind *:{{ config.stats_port }}": "bind 127.0.0.1:{{ config.stats_port }}",
                 "bind :{{ config.metrics_port }}": "bind 127.0.0.1:{{ config.metrics_port }}"}


def start_loopback() -> None:
    """Make the Ray this process starts next (and its children) listen on loopback only."""
    from ray._private import ray_constants

    os.environ.update(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time; the variable only at import


def patch_worker() -> None:
    """In a Ray worker of a loopback run: bind Serve's extra servers to 127.0.0.1 when imported."""
    if os.environ.get("COT_RAY_LOOPBACK") == "1":
        after_import("ray.serve._private.haproxy", _haproxy_template)
        after_import("ray.serve._private.haproxy", _haproxy_dies_with_its_parent)
        after_import("ray.serve._private.replica", _replica_grpc)


def _haproxy_template(module: ModuleType) -> None:
    template = module.HAPROXY_CONFIG_TEMPLATE
    missing = [old for old in HAPROXY_BINDS if old not in template]
    if missing:
        log.warning("Serve's HAProxy template changed; these binds stay on all interfaces: %s", missing)
    for old, new in HAPROXY_BINDS.items():
        template = template.replace(old, new)
    module.HAPROXY_CONFIG_TEMPLATE = template


def _haproxy_dies_with_its_parent(module: ModuleType) -> None:
    """Spawn HAProxy with ``preexec_fn`` set to Ray's fate-sharing hook; the rest of asyncio stays
    as it is (the module sees an overlay of ``asyncio`` with one function replaced)."""
    from ray._private.utils import detect_fate_sharing_support_linux, set_kill_on_parent_death_linux

    if not detect_fate_sharing_support_linux():
        log.warning("no PR_SET_PDEATHSIG here: HAProxy outlives a Ray stopped under it")
        return
    spawn = module.asyncio.create_subprocess_exec

    async def create_subprocess_exec(*args, **kwargs):
        return await spawn(*args, preexec_fn=set_kill_on_parent_death_linux, **kwargs)

    module.asyncio = _Overlay(module.asyncio, create_subprocess_exec=create_subprocess_exec)


class _Overlay(ModuleType):
    """A module that answers ``overrides`` first, then ``base``'s attributes."""

    def __init__(self, base: ModuleType, **overrides: object) -> None:
        super().__init__(base.__name__)
        self.__dict__.update(overrides)
        self._base = base

    def __getattr__(self, name: str) -> object:
        return getattr(self._base, name)


def _replica_grpc(module: ModuleType) -> None:
    add_port = getattr(module, "add_port_to_grpc_server", None)
    if add_port is None:
        log.warning("Serve's replica changed; its gRPC server stays on all interfaces")
        return

    def on_loopback(server, address: str):
        return add_port(server, "127.0.0.1:" + address.rsplit(":", 1)[1] if address.startswith("[::]:") else address)

    module.add_port_to_grpc_server = on_loopback


def after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Run ``patch(module)`` once module ``name`` is imported (now, if it already is)."""
    if name in sys.modules:
        patch(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, patch))


class _AfterImport(importlib.abc.MetaPathFinder):
    """An import hook for one module: finds it with the other finders, patches it once executed."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        return spec
