"""The smoke pipeline end to end: corpus, stages I-III on Ray Train, vLLM sampling and evaluation."""

import csv
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


def _losses(stage_dir):
    with open(stage_dir / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    cmd = [sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", "configs/smoke.yaml", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stderr[-4000:]
    return out, cmd, first.stdout + first.stderr


def test_every_stage_trained_and_its_loss_went_down(smoke_run):
    out, _, _ = smoke_run
    for stage in ("stage1-pretrain", "stage2-sft", "stage3-reflective-sft"):
        losses = _losses(out / stage)
        assert len(losses) >= 10
        first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
        assert last < first, (stage, first, last)
        assert (out / stage / "final" / "model.safetensors").exists()
        assert any((out / stage / "tensorboard").glob("events.out.tfevents.*"))
    for stage in ("stage4-rl-mtp", "stage4-rl-rmtp"):  # every RL run too, with the RL metrics split
        events = list((out / stage / "tensorboard").glob("events.out.tfevents.*"))
        assert events and b"flat_groups" in events[0].read_bytes() and b"lr" in events[0].read_bytes()


def test_checkpoints_load_in_transformers_and_were_served_by_vllm(smoke_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = smoke_run
    final = out / "stage3-reflective-sft" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.model_type == "llama" and tok.decode(tok.encode("[12*3+0]{")) == "[12*3+0]{"
    # the stage-II and stage-III evaluations ran on vLLM rollout workers
    rows = json.loads((out / "eval" / "stage3-reflective-sft.json").read_text())
    assert {r["mode"] for r in rows} == {"mtp", "rmtp", "rtbs"}
    assert all(r["n"] == 8 for r in rows) and {r["task"] for r in rows} == {"mult", "sudoku-board"}
    assert all((out / "data" / f"reflective-{task}.parquet").exists() for task in ("mult", "sudoku-board"))


def test_report_and_resume(smoke_run):
    out, cmd, _ = smoke_run
    report = (out / "report.md").read_text()
    assert "## stage3-reflective-sft" in report
    assert "| mult | id-easy |" in report and "| sudoku-board | id-easy |" in report
    assert "effect of learning to verify" in report  # the planning-only control ran and was compared
    # the control trained on as many planning examples as stage III: its steps times the planning share
    plan = sum(sum(pq.read_table(out / "data" / f"corpus-{t}.parquet", columns=["n_steps"])["n_steps"].to_pylist())
               for t in ("mult", "sudoku-board"))
    verify = sum(pq.read_metadata(out / "data" / f"reflective-{t}.parquet").num_rows for t in ("mult", "sudoku-board"))
    stage3_steps = len(_losses(out / "stage3-reflective-sft"))
    assert len(_losses(out / "stage3-control")) == max(1, round(stage3_steps * plan / (plan + verify)))
    assert (out / "accuracy.png").stat().st_size > 1000
    before = (out / "stage2-sft" / "final" / "model.safetensors").stat().st_mtime
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "stage I: pretraining: done (stage1-pretrain/final), skipped" in second.stderr
    assert (out / "stage2-sft" / "final" / "model.safetensors").stat().st_mtime == before


def test_console_carries_no_framework_noise(smoke_run):
    _, _, console = smoke_run
    assert "pretrain" in console  # the output was captured: the check below can fail
    assert "Failed to query Ray Train Controller" not in console


def test_the_run_folder_keeps_the_whole_log(smoke_run):
    out, _, console = smoke_run
    log = (out / "pipeline.log").read_text()
    assert "pipeline finished" in log and "eval stage2-sft" in log
    assert str(out / "pipeline.log") in console  # the terminal says where it is


def test_consecutive_rollout_stages_share_one_pool_and_the_report_shows_where_the_time_went(smoke_run):
    """Two pool starts in a whole run: stage II's (evaluation and stage-III sampling), and one
    reloaded for both stage-III evaluations and both RL runs (a restart costs 40-90 s)."""
    out, _, _ = smoke_run
    log = (out / "pipeline.log").read_text()
    assert "rollout pool started 2 time(s) in this run" in log
    assert log.count("(no restart)") == 3  # the control's weights, then stage II's (RL MTP), stage III's (RL RMTP)
    profile = json.loads((out / "profile.json").read_text())
    starts = [stage for stage, row in profile.items() if row.get("engine start")]
    assert starts[:2] == ["stage II eval + stage-III sampling", "stage III eval"], starts
    assert profile["stage II: SFT"]["training"] > 0 and profile["stage III eval"]["evaluation"] > 0
    assert all(row["wall"] >= sum(v for k, v in row.items() if k != "wall") - 1e-6 for row in profile.values())
    assert "## Where the time went" in (out / "report.md").read_text()


def test_bad_config_exits_with_the_field_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus:\n  n: -1\n")
    result = subprocess.run([sys.executable, "-m", "cot_ray.cli", "pipeline", "--config", str(bad), "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "corpus.n" in result.stderr
