"""``cot-ray solve``: reading a typed question, rendering one trajectory next to the expert's
verdicts, and the command end to end on an untrained checkpoint (plain torch, no Ray)."""

import json

import pytest

from cot_ray.cli import main
from cot_ray.mtp import StepRecord, Trajectory
from cot_ray.solve import parse_question, render, to_json
from cot_ray.tasks import get_task
from cot_ray.tasks.sudoku import format_board, parse_board, solve

MULT = get_task("mult")
SUDOKU = get_task("sudoku")
PUZZLE = "530070000600195000098000060800060003400803001700020006060000280000419005000080079"


@pytest.mark.parametrize("text", ["3051*27", "3051x27", " 3051 X 27\n"])
def test_parse_mult_question(text):
    p = parse_question("mult", text)
    assert (p.task, p.question, p.answer) == ("mult", {"x": 3051, "y": 27}, "82377")
    assert MULT.initial_state(p) == "1503*72+0"


def test_parse_sudoku_question_is_scored_by_the_rules_without_a_solution():
    p = parse_question("sudoku", PUZZLE)
    assert (p.task, p.question, p.answer) == ("sudoku", {"puzzle": PUZZLE}, "")
    solution = format_board(solve(parse_board(PUZZLE)))
    assert SUDOKU.check_answer(p, solution)
    assert not SUDOKU.check_answer(p, solution[1:] + solution[0])


@pytest.mark.parametrize(("task", "text", "message"), [
    ("mult", "3051+27", r"X\*Y or XxY"),
    ("mult", "", r"X\*Y or XxY"),
    ("mult", "-3*4", r"X\*Y or XxY"),
    ("mult", "1234567890123*2", "at most 12 digits"),
    ("sudoku", PUZZLE[:-1], "81 digits.*got 80 characters"),
    ("sudoku", PUZZLE[:-1] + ".", "81 digits"),
    ("sudoku", "11" + "0" * 79, "repeats a digit"),
    ("chess", "e4", "unknown task"),
])
def test_parse_question_errors_say_what_was_expected(task, text, message):
    with pytest.raises(ValueError, match=message):
        parse_question(task, text)


def _mult_trajectory() -> Trajectory:
    """An RTBS run by hand: accepted, rejected (wrong), rejected with backtrack (right: a false
    negative), accepted again without verification, then an unreadable step."""
    s0 = "1503*72+0"
    step0 = MULT.expert_step(s0)
    s1 = MULT.transition(s0, step0).next_state
    assert s1 == "1503*02+75312"
    wrong = "y2:00:02,10,01,06=2016;75312+02016=77329;1503*00+77329"  # the sum (and so the state) is off
    return Trajectory(parse_question("mult", "3051*27"), "rtbs", steps=[
        StepRecord(s0, step0, verification="✓"),
        StepRecord(s1, wrong, verification="✗", rejected=True),
        StepRecord(s1, MULT.expert_step(s1), verification="✗", rejected=True, attempt=1, backtrack=True),
        StepRecord(s0, step0, verification="", attempt=1),
        StepRecord(s1, "12x", verification=None, valid=False, error="step does not match the mult step format"),
    ], finish="invalid")


def test_render_shows_each_step_with_the_experts_verdict():
    out = render(MULT, _mult_trajectory())
    header, *blocks, footer = out.split("\n\n")
    assert "question  3051*27" in header and "expected  82377" in header and "1503*72+0" in header
    assert len(blocks) == 5

    def field(block: str, name: str) -> str:
        return next(line.split(name, 1)[1].strip() for line in block.splitlines() if line.strip().startswith(name))

    assert [field(b, "model") for b in blocks] == ["✓", "✗", "✗", "skipped", "none (not asked)"]
    assert [field(b, "expert") for b in blocks] == [
        "✓", "✗  first wrong element: sum", "✓", "✓", "✗  first wrong element: format"]
    assert [field(b, "result") for b in blocks] == [
        "accepted",
        "rejected",
        "rejected, backtrack to an earlier state  (false negative: the expert accepts it)",
        "accepted",
        "invalid: step does not match the mult step format",
    ]
    assert blocks[2].splitlines()[0] == "#3  attempt 2"
    assert footer.splitlines() == [
        "answer    none  ✗ wrong",
        "finish    invalid: an accepted step could not be read (5 proposals, 2 rejected)",
    ]


def test_render_flags_a_wrong_step_the_model_let_through():
    clash = "025;" + PUZZLE[:2] + "5" + PUZZLE[3:]  # row 0, column 2 gets a 5: row 0 has one already
    traj = Trajectory(parse_question("sudoku", PUZZLE), "rmtp", steps=[StepRecord(PUZZLE, clash, verification="✓")],
                      finish="budget")
    block = render(SUDOKU, traj).split("\n\n")[1]
    assert "expert  ✗  first wrong element: clash" in block
    assert "result  accepted  (false positive: the expert rejects it)" in block
    assert "any full grid that keeps the clues" in render(SUDOKU, traj)


def test_json_carries_the_experts_verdicts():
    d = json.loads(to_json(MULT, _mult_trajectory()))
    assert d["question"] == {"x": 3051, "y": 27} and d["expected"] == "82377" and d["finish"] == "invalid"
    assert [s["expert"] for s in d["steps"]] == [
        {"ok": True, "first_wrong": None}, {"ok": False, "first_wrong": "sum"}, {"ok": True, "first_wrong": None},
        {"ok": True, "first_wrong": None}, {"ok": False, "first_wrong": "format"}]
    assert [s["verification"] for s in d["steps"]] == ["✓", "✗", "✗", "", None]
    assert d["steps"][2]["backtrack"] is True


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from cot_ray.model import build_model, save_checkpoint

    path = tmp_path_factory.mktemp("tiny")
    save_checkpoint(build_model("tiny"), path)
    return str(path)


def test_solve_command_on_an_untrained_checkpoint(tiny_checkpoint, capsys):
    args = ["solve", "--checkpoint", tiny_checkpoint, "--task", "mult", "--mode", "rmtp", "--engine", "torch"]
    assert main([*args, "3051*27"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "task      mult (rmtp)" and "#1  attempt 1" in lines
    assert lines[-2].startswith("answer    ") and lines[-1].startswith("finish    ")
    assert any(line.strip().startswith("expert  ") for line in lines)

    assert main([*args, "--json", "3051x27"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["steps"] and d["finish"] in ("answer", "budget", "invalid")
    # an untrained model writes garbage: shown as an invalid or wrong step, not a crash
    assert not d["correct"] and any(not s["valid"] or not s["expert"]["ok"] for s in d["steps"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--task", "mult", "3051+27"], "cot-ray solve: error: a mult question is X*Y or XxY"),
    (["--task", "sudoku", "123"], "cot-ray solve: error: a sudoku question is 81 digits"),
    (["--task", "mult", "--temperature", "-1", "3*4"], "cot-ray solve: error: --temperature must be >= 0"),
])
def test_solve_command_rejects_bad_input_in_one_line(tiny_checkpoint, capsys, argv, message):
    assert main(["solve", "--checkpoint", tiny_checkpoint, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_solve_command_checks_the_checkpoint_folder(tmp_path, capsys):
    assert main(["solve", "--checkpoint", str(tmp_path), "--task", "mult", "3*4"]) == 2
    assert "is not a model folder" in capsys.readouterr().err
