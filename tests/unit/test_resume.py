"""Resume accepts only complete outputs, and only under the config the run folder was made with.

Each test sets up what a crash (or a second config) leaves behind; the code before the run
layout took a 0-byte or truncated file for a finished one and resumed under any config."""

import json
import logging
from pathlib import Path

import pytest

from cot_ray import cli, pipeline
from cot_ray.atomic import write_json
from cot_ray.config import load_config
from cot_ray.layout import RunLayout
from cot_ray.pipeline import Stage

CONFIG = "name: resume-{n}\nmodel: {{size: tiny}}\ncorpus: {{tasks: [mult], n: {n}, difficulty: id-easy}}\n"


@pytest.fixture
def fake_plan(monkeypatch):
    """``run_pipeline`` over a two-stage plan that counts its runs (no Ray, no report)."""
    runs: list[str] = []

    def plan(config, out, progress=True, pools=None):
        run = RunLayout(out)
        first, second = run.eval_summary("first"), run.eval_summary("second")
        return [Stage("first", (), (first,), lambda: (runs.append("first"), write_json(first, [1]))),
                Stage("second", (first,), (second,), lambda: (runs.append("second"), write_json(second, [2])))]

    monkeypatch.setattr(pipeline, "plan", plan)
    monkeypatch.setattr(pipeline, "write_report", lambda config, rows, out: RunLayout(out).report)
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield runs
    for handler in set(root.handlers) - set(handlers):  # the CLI's pipeline.log handler
        root.removeHandler(handler)
        handler.close()


def _config(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"c{n}.yaml"
    path.write_text(CONFIG.format(n=n))
    return path


def test_a_zero_byte_or_truncated_output_is_made_again(tmp_path, fake_plan):
    config = load_config(_config(tmp_path, 16))
    run = RunLayout(tmp_path / "run")
    pipeline.run_pipeline(config, run.root)
    assert fake_plan == ["first", "second"]
    pipeline.run_pipeline(config, run.root)
    assert fake_plan == ["first", "second"]  # both complete: both skipped
    run.eval_summary("second").write_text("")  # a crash right after the file was created
    pipeline.run_pipeline(config, run.root)
    assert fake_plan == ["first", "second", "second"]
    run.eval_summary("first").write_text("[1, 2")  # cut short
    pipeline.run_pipeline(config, run.root)
    assert fake_plan[3:] == ["first"]  # and "second", whose output is complete, stays done
    assert json.loads(run.eval_summary("first").read_text()) == [1]


def test_a_truncated_corpus_is_generated_again(tmp_path, monkeypatch):
    from cot_ray.data.corpus import generate_corpus

    calls = []

    def serial(task, n, out, **kw):
        calls.append(task)
        return generate_corpus(task, 16, out, seed=kw["seed"], difficulty=kw["difficulty"], parallel=False,
                               exclude=kw["exclude"])

    monkeypatch.setattr(pipeline, "generate_corpus", serial)
    config = load_config(_config(tmp_path, 16))
    run = RunLayout(tmp_path / "run")
    pipeline.corpus_stage(config, run.root, progress=False)
    assert calls == ["mult"] and run.is_complete(run.corpus("mult"))
    pipeline.corpus_stage(config, run.root, progress=False)
    assert calls == ["mult"]
    whole = run.corpus("mult").read_bytes()
    run.corpus("mult").write_bytes(whole[:-20])  # the footer is gone
    pipeline.corpus_stage(config, run.root, progress=False)
    run.corpus("mult").write_bytes(b"")
    pipeline.corpus_stage(config, run.root, progress=False)
    assert calls == ["mult"] * 3 and run.corpus("mult").read_bytes() == whole  # the same rows, whole again


def test_truncated_stage3_data_counts_as_missing(tmp_path):
    config = load_config(_config(tmp_path, 16))
    run = RunLayout(tmp_path / "run")
    run.reflective_data("mult").parent.mkdir(parents=True)
    run.reflective_data("mult").write_bytes(b"PAR1 not a whole file")
    assert pipeline._missing_reflective_data(config, run) == [("mult", run.reflective_data("mult"))]


def test_a_truncated_eval_summary_is_evaluated_again(tmp_path):
    from cot_ray.evaluate import LocalPool
    from cot_ray.mtp import ExpertPolicy
    from cot_ray.tasks import get_task

    config = load_config(_config(tmp_path, 16))
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"n": 3, "difficulties": ["id-easy"]})})
    run = RunLayout(tmp_path / "run")
    run.eval_summary("stage2-sft").parent.mkdir(parents=True)
    run.eval_summary("stage2-sft").write_text('[{"policy": "stage2-sft", "n": ')
    rows = pipeline.evaluation(config, run, "sft", ["mtp"], LocalPool(ExpertPolicy(get_task("mult"))))
    assert [(r["policy"], r["mode"], r["n"]) for r in rows] == [("stage2-sft", "mtp", 3)]
    assert json.loads(run.eval_summary("stage2-sft").read_text()) == rows
    assert len(run.eval_records("stage2-sft", "mult", "id-easy", "mtp").read_text().splitlines()) == 3


def test_resuming_with_another_config_is_refused_naming_the_fields(tmp_path, fake_plan, capsys):
    out = tmp_path / "run"
    first = cli.main(["pipeline", "--config", str(_config(tmp_path, 16)), "--out", str(out)])
    record = json.loads((out / "run.json").read_text())
    assert first == 0 and len(record["config_sha256"]) == 64 and record["version"]
    capsys.readouterr()
    second = cli.main(["pipeline", "--config", str(_config(tmp_path, 32)), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert second == 2 and fake_plan == ["first", "second"]  # nothing ran
    assert len(err.splitlines()) == 1 and "corpus.n, name differ" in err and "--allow-config-change" in err
    assert load_config(out / "config.json").corpus.n == 16  # the folder still says what made it
    assert json.loads((out / "run.json").read_text()) == record


def test_an_allowed_config_change_is_recorded_and_keeps_complete_outputs(tmp_path, fake_plan):
    out = tmp_path / "run"
    assert cli.main(["pipeline", "--config", str(_config(tmp_path, 16)), "--out", str(out)]) == 0
    before = json.loads((out / "run.json").read_text())["config_sha256"]
    assert cli.main(["pipeline", "--config", str(_config(tmp_path, 32)), "--out", str(out),
                     "--allow-config-change"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert [(c["previous_sha256"], c["sha256"], c["fields"]) for c in record["changes"]] == [
        (before, record["config_sha256"], ["corpus.n", "name"])]
    assert record["config_sha256"] != before and load_config(out / "config.json").corpus.n == 32
    assert fake_plan == ["first", "second"]  # complete outputs were kept
    assert cli.main(["pipeline", "--config", str(_config(tmp_path, 32)), "--out", str(out)]) == 0  # now its own


def test_a_config_recorded_before_a_field_existed_is_not_a_change(tmp_path, fake_plan):
    config = load_config(_config(tmp_path, 16))
    run = RunLayout(tmp_path / "run")
    recorded = config.model_dump(mode="json")
    del recorded["eval"]["seed"]  # as an older version of the code wrote it
    write_json(run.config_record, recorded)
    pipeline.run_pipeline(config, run.root)
    assert json.loads(run.run_record.read_text())["changes"] == []
