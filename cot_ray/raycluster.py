"""Connecting to Ray: an existing cluster if there is one, else a local one started on demand."""

from __future__ import annotations

import logging
import os

from cot_ray.loopback import patch_worker, start_loopback

log = logging.getLogger(__name__)


QUIET_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)
"""Framework loggers whose warnings are noise on local Ray: without the dashboard, Ray Train's
placement-group cleaner cannot reach the state API and warns about it every second of every
training stage (over 300 lines per run). Errors still get through."""


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: runs in every worker process this job starts."""
    from cot_ray.loopback import after_import

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Ray Train logs every ray.train.report at INFO, under a logger named by its file path
    after_import("ray.train.v2._internal.execution.context",
                 lambda module: logging.getLogger(module.__file__).setLevel(logging.WARNING))
    patch_worker()


def ensure_ray(num_cpus: int | None = None) -> None:
    """``ray.init`` once: joins ``RAY_ADDRESS`` (e.g. inside ``ray job submit``) when set,
    otherwise starts a local Ray without the dashboard, sized to this machine and listening on
    loopback only (:mod:`cot_ray.loopback`). Worker output (training progress bars) is forwarded to
    this process, less :data:`QUIET_LOGGERS`."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # a cluster has its dashboard, so the state API answers
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
    else:
        start_loopback()
        # address="local": always a Ray of our own, never a cluster another program started on this machine
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                 runtime_env={"worker_process_setup_hook": "cot_ray.raycluster.setup_worker"},
                 configure_logging=True, logging_level=logging.WARNING)
    log.info("ray resources: %s", ray.cluster_resources())
