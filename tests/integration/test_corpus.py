import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from cot_ray.data.corpus import SCHEMA, generate_corpus
from cot_ray.tasks import get_task

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("task_name", ["mult", "sudoku"])
def test_ray_corpus_equals_single_process_corpus(ray_local, tmp_path, task_name):
    par = generate_corpus(task_name, 90, str(tmp_path / "par.parquet"), seed=3, shard_size=16)
    ser = generate_corpus(task_name, 90, str(tmp_path / "ser.parquet"), seed=3, parallel=False)
    assert par.equals(ser)
    on_disk = pq.read_table(tmp_path / "par.parquet")
    assert on_disk.schema.equals(SCHEMA) and on_disk.num_rows == 90
    assert on_disk["id"].to_pylist() == list(range(90))


def test_rows_carry_question_answer_and_a_verified_trace(ray_local, tmp_path):
    table = generate_corpus("mult", 40, str(tmp_path / "m.parquet"), seed=0, difficulty="id-hard")
    task = get_task("mult")
    for row in table.to_pylist():
        q = json.loads(row["question"])
        assert row["difficulty"] == "id-hard" and int(row["answer"]) == q["x"] * q["y"]
        last = row["trace"][-1]
        assert row["n_steps"] == len(row["trace"])
        assert task.transition(last["state"], last["step"]).answer == row["answer"]
        for rec in row["trace"]:
            assert rec["verification"] == "✓" == task.verify(rec["state"], rec["step"]).text()
        assert row["text"].startswith("<bos>[") and row["text"].endswith("<eos>")


def test_default_difficulty_is_the_in_distribution_mix(tmp_path):
    table = generate_corpus("sudoku", 60, str(tmp_path / "s.parquet"), parallel=False)
    assert set(table["difficulty"].to_pylist()) == {"id-easy", "id-hard"}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cot_ray.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["--task", "chess", "--n", "5"], "invalid choice: 'chess'"),
    (["--task", "mult", "--n", "0"], "--n must be a positive"),
    (["--task", "mult", "--n", "5", "--out", "/proc/nope/x.parquet"], "--out"),
])
def test_bad_arguments_exit_nonzero_with_one_line(tmp_path, args, needle):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "x.parquet")]
    result = _cli("data", *args)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert needle in last


def test_cli_writes_a_corpus(tmp_path):
    out = tmp_path / "c" / "mult.parquet"
    result = _cli("data", "--task", "mult", "--difficulty", "id-easy", "--n", "50", "--out", str(out), "--serial")
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).num_rows == 50 and "wrote 50 rows" in result.stdout
