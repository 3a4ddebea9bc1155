"""Sample trajectories from a checkpoint with the rollout pool (``--checkpoint``, ``--task``, ``--n``, ``--out``).

Thin entrypoint for ``ray job submit --working-dir . -- python jobs/rollout.py ...``: all logic is in
``cot_ray.cli``. The repository root (the job's uploaded working dir) replaces ``jobs/`` at the
front of ``sys.path``, so the uploaded ``cot_ray`` is imported even where it is not installed.
"""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

from cot_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["rollout", *sys.argv[1:]]))
