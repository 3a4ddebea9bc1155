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

Serve stops HAProxy when it shuts down cleanly, but when Ray is stopped under it (``ray stop``,
a killed process group) HAProxy lives on, holding the ports: :func:`haproxy_configs` notes the
configuration files of a service's HAProxy processes while they run, and :func:`stop_haproxy`
ends every process still reading one of them. (Making HAProxy share its parent's fate with
``PR_SET_PDEATHSIG`` does not work: Serve spawns it from a thread, whose end killed it at once.)

A fourth, torch's rendezvous store in every Ray Train group, is opened on 127.0.0.1 by the
group's backend (:mod:`cot_ray.train.rendezvous`), which :data:`LOOPBACK_ENV` switches on.
"""

from __future__ import annotations

import contextlib
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
        after_import("ray.serve._private.replica", _replica_grpc)


def _haproxy_template(module: ModuleType) -> None:
    template = module.HAPROXY_CONFIG_TEMPLATE
    missing = [old for old in HAPROXY_BINDS if old not in template]
    if missing:
        log.warning("Serve's HAProxy template changed; these binds stay on all interfaces: %s", missing)
    for old, new in HAPROXY_BINDS.items():
        template = template.replace(old, new)
    module.HAPROXY_CONFIG_TEMPLATE = template


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


def haproxy_configs(root_pid: int) -> set[str]:
    """The ``-f`` configuration files of the HAProxy processes below ``root_pid`` (HAProxy reloads
    start new processes on the same file, so the file names the service's HAProxy for good)."""
    import psutil

    configs = set()
    for proc in psutil.Process(root_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            args = proc.cmdline()
            if proc.name() == "haproxy" and "-f" in args[:-1]:
                configs.add(args[args.index("-f") + 1])
    return configs


def stop_haproxy(configs: set[str]) -> int:
    """Kill every process still reading one of ``configs`` (orphans of a Ray stopped under the
    service); returns how many there were."""
    import psutil

    killed = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        args = proc.info["cmdline"] or []
        if proc.info["name"] == "haproxy" and "-f" in args[:-1] and args[args.index("-f") + 1] in configs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed += 1
    return killed
