"""Every bad input fails before any work: exit status 2, one line naming the field or the file, and
nothing written that a rerun would trust. The table runs the CLI in this process, with Ray made
to fail if anything tries to start it; two cases run it as a real process, to see the exit status
and the absence of a traceback from outside."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save_file

from cot_ray import cli


def _model(folder: Path, config: str = '{"model_type": "llama"}', cut: int = 0) -> Path:
    """An HF-like model folder; ``cut`` bytes are taken off the end of its weights."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config)
    weights = folder / "model.safetensors"
    save_file({"w": np.zeros(64, np.float32)}, str(weights))
    if cut:
        weights.write_bytes(weights.read_bytes()[:-cut])
    return folder


def _config(tmp: Path, text: str) -> str:
    (tmp / "c.yaml").write_text(f"extends: {Path('configs/smoke.yaml').resolve()}\n{text}\n")
    return str(tmp / "c.yaml")


def _run_with(tmp: Path, rel: str, write) -> str:
    """A run folder in which ``rel`` was written by ``write(path)``."""
    path = tmp / "run" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    return str(tmp / "run")


SMOKE = ["--config", "configs/smoke.yaml"]
BAD_CONFIG, TRUNCATED = '{"model_type": "lla', 16

# (command line, with {t} the test's folder; what the error line names; how to set up the folder)
CASES = {
    "pipeline --out under a file": (["pipeline", *SMOKE, "--out", "{t}/file/run"], "--out", None),
    "eval --out under a file": (["eval", "--task", "mult", "--n", "2", "--out", "{t}/file/r.jsonl"], "--out", None),
    "rollout --out under a file": (["rollout", "--checkpoint", "{t}/ok", "--task", "mult", "--n", "2", "--out",
                                    "{t}/file/t.parquet"], "--out", "ok"),
    "rl --out under a file": (["rl", *SMOKE, "--init", "{t}/ok", "--out", "{t}/file/rl"], "--out", "ok"),
    "stage --out is a file": (["sft", *SMOKE, "--out", "{t}/file"], "--out", None),
    "solve bad config.json": (["solve", "--checkpoint", "{t}/bad", "--task", "mult", "12x3"], "config.json", "bad"),
    "solve truncated weights": (["solve", "--checkpoint", "{t}/cut", "--task", "mult", "12x3"], "model.safetensors",
                                "cut"),
    "eval truncated weights": (["eval", "--checkpoint", "{t}/cut", "--task", "mult", "--n", "2"],
                               "model.safetensors", "cut"),
    "rollout bad config.json": (["rollout", "--checkpoint", "{t}/bad", "--task", "mult", "--n", "2", "--out",
                                 "{t}/t.parquet"], "config.json", "bad"),
    "rl --init truncated weights": (["rl", *SMOKE, "--init", "{t}/cut", "--out", "{t}/rl"], "model.safetensors",
                                    "cut"),
    "stage init bad config.json": (["sft", *SMOKE, "--out", "{t}/run"], "stage1-pretrain/final/config.json",
                                   "run:bad-init"),
    "stage III Parquet with wrong columns": (["reflective-sft", *SMOKE, "--out", "{t}/run"],
                                             "reflective-mult.parquet: missing column(s) step, verification",
                                             "run:columns"),
    "corpus Parquet with wrong columns": (["pipeline", *SMOKE, "--out", "{t}/run"],
                                          "corpus-mult.parquet: missing column(s) trace, n_steps", "run:corpus"),
    "rl.difficulty": (["pipeline", "--config", "{t}/c.yaml", "--out", "{t}/run"], "rl.difficulty",
                      "config:rl: {difficulty: impossible}"),
    "negative resources": (["sft", "--config", "{t}/c.yaml", "--out", "{t}/run"], "sft.resources.trainer",
                           "config:sft: {resources: {trainer: -1}}"),
    "min_lr > lr": (["pipeline", "--config", "{t}/c.yaml", "--out", "{t}/run"], "pretrain: Value error, min_lr",
                    "config:pretrain: {lr: 0.001, min_lr: 0.01}"),
    "rl min_lr > lr": (["rl", "--config", "{t}/c.yaml", "--init", "{t}/ok", "--out", "{t}/rl"], "rl: Value error",
                       "config:rl: {min_lr: 1.0}"),
    "negative eval temperature": (["pipeline", "--config", "{t}/c.yaml", "--out", "{t}/run"],
                                  "eval.plan_temperature.sudoku", "config:eval: {plan_temperature: {sudoku: -1}}"),
    "negative rollout temperature": (["rollout", "--checkpoint", "{t}/ok", "--task", "mult", "--n", "2",
                                      "--temperature", "-1", "--out", "{t}/t.parquet"], "--temperature", "ok"),
    "--set without =": (["pipeline", *SMOKE, "--out", "{t}/run", "--set", "sft.lr"], "--set 'sft.lr'", None),
    "--set out of range": (["pipeline", *SMOKE, "--out", "{t}/run", "--set", "sft.lr=-1"], "sft.lr", None),
    "--set unknown field": (["sft", *SMOKE, "--out", "{t}/run", "--set", "sft.nope=1"], "sft.nope", None),
    "--set bad difficulty": (["rl", *SMOKE, "--init", "{t}/ok", "--out", "{t}/rl", "--set",
                              "rl.difficulty=impossible"], "rl.difficulty", "ok"),
}


def _prepare(tmp: Path, setup: str | None) -> None:
    (tmp / "file").write_text("a file, not a folder")
    _model(tmp / "ok")
    if setup is None or setup == "ok":
        return
    if setup.startswith("config:"):
        _config(tmp, setup.removeprefix("config:"))
    elif setup == "bad":
        _model(tmp / "bad", config=BAD_CONFIG)
    elif setup == "cut":
        _model(tmp / "cut", cut=TRUNCATED)
    elif setup == "run:bad-init":
        _model(tmp / "run" / "stage1-pretrain" / "final", config=BAD_CONFIG)
    elif setup == "run:columns":
        _run_with(tmp, "data/reflective-mult.parquet",
                  lambda p: pq.write_table(pa.table({"state": ["x"], "correct": [True]}), p))
    elif setup == "run:corpus":
        _run_with(tmp, "data/corpus-mult.parquet", lambda p: pq.write_table(pa.table({"question": ["1*2"]}), p))


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray (or a rollout pool, or a training stage) fails the test."""
    import cot_ray.raycluster

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr(cot_ray.raycluster, "ensure_ray", refuse)


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_line_naming_it_before_any_work(name, tmp_path, capsys, no_ray):
    argv, named, setup = CASES[name]
    _prepare(tmp_path, setup)
    before = _files(tmp_path)
    code = cli.main([a.replace("{t}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"cot-ray {argv[0]}: error: "), err
    assert named in err, err
    assert _files(tmp_path) == before  # nothing written, nothing touched


def test_the_safetensors_check_passes_a_whole_file_and_names_every_kind_of_damage(tmp_path):
    from cot_ray.checks import InputError, model_files

    model_files(_model(tmp_path / "ok"), "--init")  # a complete model passes
    for i, damage in enumerate([b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{not json", b"\xff" * 8]):
        folder = _model(tmp_path / str(i))
        (folder / "model.safetensors").write_bytes(damage)
        with pytest.raises(InputError, match=r"model\.safetensors: not a safetensors file"):
            model_files(folder, "--init")
    (tmp_path / "ok" / "model.safetensors").unlink()
    with pytest.raises(InputError, match="missing"):
        model_files(tmp_path / "ok", "--init")


@pytest.mark.parametrize("argv,named", [
    (["rl", *SMOKE, "--init", "{t}/cut", "--out", "{t}/rl"], "model.safetensors: truncated"),
    (["pipeline", *SMOKE, "--out", "{t}/file/run"], "--out"),
])
def test_the_command_exits_2_with_one_line_and_no_traceback(argv, named, tmp_path):
    _prepare(tmp_path, "cut")
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, "-m", "cot_ray.cli", *(a.replace("{t}", str(tmp_path)) for a in argv)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and named in result.stderr, result.stderr[-2000:]
    assert _files(tmp_path) == before
