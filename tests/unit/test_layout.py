"""The run layout's resume rule and the atomic writes it relies on."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cot_ray.atomic import write_jsonl, write_parquet, write_text, write_with
from cot_ray.layout import RunLayout, is_complete


def _safetensors(data_bytes: int, stored: int) -> bytes:
    """A safetensors file whose header lists ``data_bytes`` bytes of tensor data, ``stored`` present."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(stored)


def test_a_parquet_file_is_complete_only_with_its_footer(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", pa.table({"x": list(range(100))}))
    assert is_complete(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a crash mid-write of the old, non-atomic code
    assert not is_complete(path)
    path.write_bytes(b"")
    assert not is_complete(path)
    assert not is_complete(tmp_path / "missing.parquet")


def test_json_and_jsonl_are_complete_only_when_they_parse(tmp_path):
    summary = write_text(tmp_path / "s.json", json.dumps([{"a": 1}, {"b": 2}]))
    assert is_complete(summary)
    summary.write_text(summary.read_text()[:-3])
    assert not is_complete(summary)
    records = write_jsonl(tmp_path / "r.jsonl", [{"a": 1}, {"b": 2}])
    assert is_complete(records)
    text = records.read_text()
    records.write_text(text[:-1])  # the last line lost its end
    assert not is_complete(records)
    records.write_text(text[:-5] + "\n")
    assert not is_complete(records)
    records.write_text("")
    assert not is_complete(records)


def test_a_model_folder_is_complete_only_with_all_its_weights(tmp_path):
    final = RunLayout(tmp_path).final("sft")
    final.mkdir(parents=True)
    assert not is_complete(final)
    (final / "model.safetensors").write_bytes(b"")
    assert not is_complete(final)
    (final / "model.safetensors").write_bytes(_safetensors(64, 10))  # truncated tensor data
    assert not is_complete(final)
    (final / "model.safetensors").write_bytes(_safetensors(64, 64))
    assert is_complete(final)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = write_text(tmp_path / "eval" / "x.json", "[1]")

    def crash(tmp):
        tmp.write_text("[1, 2")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_with(path, crash)
    assert path.read_text() == "[1]"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_a_folder_is_renamed_into_place_whole(tmp_path):
    final = tmp_path / "stage" / "final"

    def model(tmp):
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(_safetensors(4, 4))

    write_with(final, model)
    write_with(final, model)  # replaces an existing folder
    assert is_complete(final) and sorted(p.name for p in final.parent.iterdir()) == ["final"]


def test_layout_paths_are_the_documented_ones(tmp_path):
    run = RunLayout(tmp_path)
    assert run.relative(run.corpus("mult")) == "data/corpus-mult.parquet"
    assert run.relative(run.reflective_data("sudoku")) == "data/reflective-sudoku.parquet"
    assert run.relative(run.final("reflective-sft")) == "stage3-reflective-sft/final"
    assert run.relative(run.checkpoints("rl-rmtp")) == "stage4-rl-rmtp/checkpoints"
    assert run.relative(run.eval_summary("stage2-sft")) == "eval/stage2-sft.json"
    assert run.eval_records("noisy(a)/b", "mult", "id-easy", "mtp").name == "noisy(a)_b-mult-id-easy-mtp.jsonl"
    assert pq.read_metadata(write_parquet(run.corpus("mult"), pa.table({"x": [1]}))).num_rows == 1
