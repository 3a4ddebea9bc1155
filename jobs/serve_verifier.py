"""The verifier service (Ray Serve) as a long-running job; stop the job to shut it down.

For a managed service prefer ``serve deploy deployments/verifier.yaml`` or the RayService in
``deployments/rayservice.yaml``; this job is for ad-hoc use on a cluster (``--host``, ``--port``).

Thin entrypoint for ``ray job submit --working-dir . -- python jobs/serve_verifier.py ...``: all logic is in
``cot_ray.cli``. The repository root (the job's uploaded working dir) replaces ``jobs/`` at the
front of ``sys.path``, so the uploaded ``cot_ray`` is imported even where it is not installed.
"""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

from cot_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve", "verifier", *sys.argv[1:]]))
