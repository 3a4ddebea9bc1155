"""The one Ray job entrypoint: ``python jobs/run.py <job> [options]``, the job as its first argument.

    ray job submit --working-dir . -- python jobs/run.py pipeline --config configs/smoke.yaml --out runs/smoke

Jobs (each is a ``cot-ray`` subcommand with the options it documents, ``--help`` included):

    pipeline        every stage of a config into a run folder (``--config``, ``--out``), resumable
    pretrain        stage I alone: pretraining on the CoT corpus with Ray Train
    sft             stage II alone, from the stage-I checkpoint in ``--out``
    reflective-sft  stage III alone, from the stage-II checkpoint in ``--out``
    rl              stage IV: RL fine-tuning of a policy checkpoint (``--init``, ``--mode``)
    rollout         sample trajectories from a checkpoint with the rollout pool
    serve-verifier  the verifier service (Ray Serve) until the job is stopped; for a managed
                    service prefer ``serve deploy deployments/verifier.yaml`` or
                    ``deployments/rayservice.yaml``

All logic is in ``cot_ray.cli``. The repository root (the job's uploaded working dir) replaces
``jobs/`` at the front of ``sys.path``, so the uploaded ``cot_ray`` is imported even where it is
not installed.
"""

import sys
from pathlib import Path

JOBS: dict[str, tuple[str, ...]] = {
    "pipeline": ("pipeline",),
    "pretrain": ("pretrain",),
    "sft": ("sft",),
    "reflective-sft": ("reflective-sft",),
    "rl": ("rl",),
    "rollout": ("rollout",),
    "serve-verifier": ("serve", "verifier"),
}
"""Job name -> the ``cot-ray`` command line it starts with."""


def job_argv(argv: list[str]) -> list[str]:
    """The ``cot-ray`` arguments for ``jobs/run.py`` arguments. ``--help`` alone prints this
    module's help; a missing or unknown job exits 2 naming the jobs, like every ``cot-ray`` error."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit(0)
    if not argv or argv[0] not in JOBS:
        got = f"unknown job {argv[0]!r}" if argv else "no job given"
        print(f"usage: jobs/run.py {{{','.join(JOBS)}}} [options]\njobs/run.py: error: {got}", file=sys.stderr)
        sys.exit(2)
    return [*JOBS[argv[0]], *argv[1:]]


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # only when run: importing this file changes nothing
    from cot_ray.cli import main

    sys.exit(main(job_argv(sys.argv[1:])))
