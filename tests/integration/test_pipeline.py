import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_smoke_pipeline_runs_and_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", "configs/smoke.yaml", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("data/corpus-mult.parquet", "data/corpus-sudoku.parquet", "report.md", "accuracy.png"):
        assert (out / name).exists(), name
    rows = json.loads((out / "eval" / "summary.json").read_text())
    expert = [r for r in rows if r["policy"] == "expert"]
    assert expert and all(r["accuracy"] == 1.0 for r in expert)
    report = (out / "report.md").read_text()
    assert "| mult | id-easy |" in report
    mtime = (out / "data" / "corpus-mult.parquet").stat().st_mtime
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "skipped" in second.stderr
    assert (out / "data" / "corpus-mult.parquet").stat().st_mtime == mtime


def test_bad_config_exits_with_the_field_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus:\n  n: -1\n")
    result = subprocess.run([sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", str(bad), "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "corpus.n" in result.stderr
