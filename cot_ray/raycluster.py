"""Connecting to Ray: an existing cluster if there is one, else a local one started on demand."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def ensure_ray(num_cpus: int | None = None) -> None:
    """``ray.init`` once: joins ``RAY_ADDRESS`` (e.g. inside ``ray job submit``) when set,
    otherwise starts a local Ray without the dashboard, sized to this machine. Worker output
    (training progress bars) is forwarded to this process."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                 configure_logging=True, logging_level=logging.WARNING)
    log.info("ray resources: %s", ray.cluster_resources())
