import json
from collections import Counter

import pytest

from cot_ray.config import PipelineConfig
from cot_ray.evaluate import Summary, first_failure, record
from cot_ray.layout import RunLayout
from cot_ray.mtp.trajectory import StepRecord, Trajectory
from cot_ray.report import (
    NO_ERROR,
    accuracy_cell,
    digit_grid,
    failure_breakdown,
    heatmap_records,
    read_records,
    rl_curves,
    write_report,
)
from cot_ray.stats import counts
from cot_ray.tasks import Problem


class _Diagnosing:
    """A task whose steps are right when they read "ok"; wrong ones name their kind."""

    name = "fake"

    def diagnose(self, state: str, step: str) -> str | None:
        return None if step == "ok" else step


def _traj(*steps: StepRecord, correct: bool = False) -> Trajectory:
    problem = Problem("mult", "id-easy", {"x": 12, "y": 345}, "4140")
    return Trajectory(problem, "rmtp", list(steps), answer="1", correct=correct, finish="answer")


def test_first_error_skips_rejected_steps_and_counts_accepted_ones():
    traj = _traj(StepRecord("s0", "ok"), StepRecord("s1", "carry", rejected=True), StepRecord("s1", "ok"),
                 StepRecord("s2", "product"), StepRecord("s3", "sum"))
    assert first_failure(traj, _Diagnosing()) == ("product", 2)


def test_first_error_of_invalid_and_of_clean_runs():
    assert first_failure(_traj(StepRecord("s0", "ok"), StepRecord("s1", "ok", valid=False)), _Diagnosing()) \
        == ("format", 1)
    assert first_failure(_traj(StepRecord("s0", "ok"), StepRecord("s1", "x", rejected=True)), _Diagnosing()) \
        == (None, None)


def test_record_carries_first_error():
    r = record(_traj(StepRecord("s0", "carry")), _Diagnosing())
    assert (r.first_error, r.first_error_step) == ("carry", 0)
    assert json.loads(r.question) == {"x": 12, "y": 345}


def test_record_and_summary_count_backtracks():
    back = _traj(StepRecord("s0", "ok", rejected=True, backtrack=True), StepRecord("s0", "ok", rejected=True,
                                                                                  backtrack=True))
    assert record(back, _Diagnosing()).backtracks == 2
    assert Summary.of([back, _traj(StepRecord("s0", "ok"))]).backtracked == 1


def test_summary_has_counts_and_interval():
    s = Summary.of([_traj(correct=True)] * 5 + [_traj()] * 5)
    assert (s.n, s.correct, s.accuracy, s.backtracked) == (10, 5, 0.5, 0)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert "[23.7%, 76.3%]" in s.line()


def test_accuracy_cell_and_rows_cached_before_correct_existed():
    assert accuracy_cell({"n": 200, "correct": 191, "accuracy": 0.955}) == "95.5 [91.7, 97.6]"
    assert counts({"n": 200, "accuracy": 0.955}) == (191, 200)


def _rec(x: int, y: int, correct: bool, first_error: str | None = None) -> dict:
    return {"question": json.dumps({"x": x, "y": y}), "correct": correct, "first_error": first_error}


RECORDS = [_rec(7, 12, True), _rec(3, 45, True), _rec(9, 99, False, "carry"), _rec(123, 4, False, "carry"),
           _rec(456, 7, False, "sum"), _rec(789, 1, True), _rec(10, 100, False, None)]


def test_failure_breakdown_from_jsonl(tmp_path):
    path = RunLayout(tmp_path).eval_records("noisy(mu=0.85,e+=0.2)/x", "mult", "id-easy", "mtp")
    assert path.name == "noisy(mu=0.85,e+=0.2)_x-mult-id-easy-mtp.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert failure_breakdown(read_records(path)) == Counter({"carry": 2, "sum": 1, NO_ERROR: 1})


def test_failure_breakdown_skips_old_or_missing_records(tmp_path):
    assert read_records(tmp_path / "missing.jsonl") == []
    assert failure_breakdown([]) is None
    assert failure_breakdown([{"question": "{}", "correct": False}]) is None


def test_digit_grid_counts_per_operand_length():
    grid = digit_grid(RECORDS + [{"question": json.dumps({"puzzle": "1" * 81}), "correct": True}])
    assert grid == {(1, 2): (2, 3), (3, 1): (1, 3), (2, 3): (0, 1)}


def _row(policy: str, difficulty: str, mode: str, correct: int, n: int = 200) -> dict:
    return {"policy": policy, "task": "mult", "difficulty": difficulty, "mode": mode, "n": n, "correct": correct,
            "accuracy": correct / n, "mean_steps": 5.0, "reflection_frequency": 0.5, "rejection_rate": 0.1,
            "invalid": 0, "e_plus": 0.1, "e_minus": 0.2}


def test_write_report(tmp_path):
    config = PipelineConfig.model_validate({"corpus": {"tasks": ["mult"]},
                                            "eval": {"difficulties": ["id-easy"], "modes": ["mtp", "rmtp"]}})
    rows = [_row("expert", "id-easy", "mtp", 200), _row("stage2-sft", "id-easy", "mtp", 100),
            _row("stage3-reflective-sft", "id-easy", "mtp", 104), _row("stage3-reflective-sft", "id-easy", "rmtp", 150)]
    rows[-1]["by_truth"] = {"sound": [3, 40], "broken": [9, 10], "wrong-guess": [0, 0]}
    rows[-1].update({"mu": 0.9, "e_plus": 0.1, "e_minus": 0.2, "e_plus_revision": 0.3, "e_minus_revision": 0.4,
                     "pass@1": 0.5, "pass@4": 0.75, "pass@16": 1.0, "wrong_greedy_states": 12, "theorem1_rmtp": 0.8,
                     "discrimination": {"within_state_auc": 0.55, "pooled_auc": 0.85, "states": 31,
                                        "by_kind": [{"kind": "copy", "within_state_auc": 0.5, "pairs": 40,
                                                     "wrong_acceptance": 0.9}],
                                        "at_element": [{"kind": "copy", "within_state_auc": 0.625, "pairs": 40,
                                                        "wrong_acceptance": 0.8}]},
                     "vs_mtp": {"difference": 0.23, "low": 0.15, "high": 0.31}})
    (tmp_path / "eval").mkdir()
    RunLayout(tmp_path).eval_records("stage3-reflective-sft", "mult", "id-easy", "mtp").write_text(
        "".join(json.dumps(r) + "\n" for r in RECORDS))
    assert heatmap_records(tmp_path, rows) == ("stage3-reflective-sft", RECORDS)

    text = write_report(config, rows, tmp_path).read_text()
    assert "| mult | id-easy | 50.0 [43.1, 56.9] | - |" in text  # stage2-sft, no RMTP run
    assert "| stage III vs stage II, MTP | +2.0 [-7.7, +11.7] (no difference: inside the noise) |" in text
    assert "| stage III: RMTP vs MTP | +23.0 [+13.6, +31.8] |" in text
    assert "RTBS" not in text.split("## Comparisons")[1].split("##")[0]  # rows that do not exist are not compared
    assert ("| stage3-reflective-sft | mult | id-easy | 90.0 | 55.0 / 85.0 (31) | 10.0 / 20.0 | 30.0 / 40.0 |" in text
            and "| 50.0 / 75.0 / 100.0 (12) | 80.0 | 75.0 [68.6, 80.5] |" in text)  # Theorem 1 beside measured
    assert "- stage3-reflective-sft, mult id-easy: copy 50.0 (40)" in text  # AUC by the wrong element
    assert "  - at the wrong element's own label: copy 62.5" in text
    assert "| stage3-reflective-sft | mult | id-easy | RMTP | 10.0 (10) | - | 7.5 (40) | - |" in text
    assert "| stage3-reflective-sft | mult | id-easy | RMTP - MTP | +23.0 [+15.0, +31.0] |" in text  # paired
    assert "(no difference)" not in text.split("paired")[-1].split("##")[0]
    assert "| policy | split | failing | carry | sum | none |" in text
    assert "| stage3-reflective-sft | id-easy | 4 / 7 | 50.0 | 25.0 | 25.0 |" in text
    assert "| stage2-sft |" not in text.split("## Where steps fail")[1]  # no JSONL: skipped quietly
    assert "![heatmap](heatmap.png)" in text
    assert (tmp_path / "heatmap.png").stat().st_size > 0 and (tmp_path / "accuracy.png").stat().st_size > 0


def test_rl_curves_reach_the_report(tmp_path):
    run = tmp_path / "stage4-rl-rmtp"
    run.mkdir()
    (run / "metrics.csv").write_text("update,reward,accuracy,reflection,e_plus,e_minus,flat_groups,kl\n"
                                     "1,0.25,0.25,0.9,,0.1,0.5,0\n2,0.5,0.5,0.95,0.2,0.05,0.25,0.01\n")
    curves = rl_curves(tmp_path)
    assert curves["stage4-rl-rmtp"]["reward"] == [0.25, 0.5] and "stage4-rl-mtp" not in curves
    config = PipelineConfig.model_validate({"corpus": {"tasks": ["mult"]}, "eval": {"difficulties": ["id-easy"]}})
    text = write_report(config, [_row("stage2-sft", "id-easy", "mtp", 100)], tmp_path).read_text()
    assert "| stage4-rl-rmtp | 0.250 -> 0.500 | 0.250 -> 0.500 | 0.900 -> 0.950 | - -> 0.200 |" in text
    assert (tmp_path / "rl.png").stat().st_size > 0


def test_the_paper_table_and_the_heat_map_go_by_task_family(tmp_path):
    """The cpu-sudoku run trains sudoku-board: the paper's Sudoku rows are its comparison. A
    mult-msd run has the heat map; a Sudoku run has none (no operand lengths)."""
    from cot_ray.config import load_config

    sudoku = load_config("configs/cpu-sudoku.yaml")
    assert sudoku.corpus.tasks == ["sudoku-board"] and sudoku.model.size == "1M"
    rows = [{**_row("stage2-sft", "id-easy", "mtp", 100), "task": "sudoku-board"}]
    text = write_report(sudoku, rows, tmp_path).read_text()
    assert "| sudoku | id-easy | 1.4 | 33.0 | 32.4 | 2.4 |" in text
    assert "heatmap" not in text and heatmap_records(tmp_path, rows) is None

    (tmp_path / "eval").mkdir()
    msd = [{**_row("stage2-sft", "id-easy", "mtp", 100), "task": "mult-msd"}]
    RunLayout(tmp_path).eval_records("stage2-sft", "mult-msd", "id-easy", "mtp").write_text(
        "".join(json.dumps(r) + "\n" for r in RECORDS))
    assert heatmap_records(tmp_path, msd) == ("stage2-sft", RECORDS)
