"""The ``sudoku-board`` layout: the step is the new board alone and the expert fills naked singles only
(every filled cell a local function of its 20 peers), guessing from the solution when there is none."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import get_task
from cot_ray.tasks.sudoku import candidates, parse_board

board, plain = get_task("sudoku-board"), get_task("sudoku")


@given(st.integers(0, 2**32), st.sampled_from(["id-easy", "id-hard"]))
@settings(max_examples=30, deadline=None)
def test_every_step_fills_exactly_the_naked_singles_or_one_guess(seed, level):
    p = board.generate(level, random.Random(seed))
    trace = expert_trace(board, p)
    for state, step in trace:
        before, after = parse_board(state), parse_board(step)
        assert len(step) == 81 and board.verify(state, step).ok and board.diagnose(state, step) is None
        singles = {i: min(c) for i in range(81) if before[i] == 0 and len(c := candidates(before, i)) == 1}
        filled = {i: after[i] for i in range(81) if before[i] != after[i]}
        if singles:
            assert filled == singles
        else:  # a guess: one blank with the fewest candidates, its value from the solution
            (cell, value), = filled.items()
            fewest = min(len(candidates(before, i)) for i in range(81) if before[i] == 0)
            assert len(candidates(before, cell)) == fewest and value == int(p.answer[cell])
    t = board.transition(*trace[-1])
    assert t.is_answer and board.check_answer(p, t.answer)


def test_the_board_layout_fills_fewer_cells_per_step_than_the_hidden_single_expert():
    rng = random.Random(3)
    problems = [board.generate("id-hard", rng) for _ in range(10)]
    assert sum(len(expert_trace(board, p)) for p in problems) > sum(len(expert_trace(plain, p)) for p in problems)


@pytest.mark.parametrize("name, shape", [("sudoku-board", "<81 digits>"),
                                         ("sudoku-listed", "<rows>:<columns>:<blocks>")])
@given(text=st.text(alphabet="0123456789,;:?", max_size=120))
@settings(max_examples=200, deadline=None)
def test_malformed_steps_are_flagged_never_raise(name, shape, text):
    task = get_task(name)
    t = task.transition("0" * 81, text)
    if not t.valid:
        assert shape in t.error and task.diagnose("0" * 81, text) == "format"


def test_a_clashing_step_is_diagnosed():
    rng = random.Random(5)
    state = board.initial_state(board.generate("id-easy", rng))
    step = board.perturb_step(state, rng)
    assert len(step) == 81 and board.diagnose(state, step) == "clash" and not board.verify(state, step).ok
