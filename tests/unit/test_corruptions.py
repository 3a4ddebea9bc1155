"""Stage III's ✗ fills: a right step with exactly one element wrong, of the kind it claims."""

import random

import pytest

from cot_ray.data.splits import problems
from cot_ray.tasks import get_task
from cot_ray.tasks.mult_corruptions import ANSWER_KINDS, STEP_KINDS


def _expert_states(task, difficulty: str, n: int):
    """(state, expert step) along the expert traces of ``n`` problems."""
    for problem in problems(task, difficulty, n, 0, "reflective"):
        state = task.initial_state(problem)
        while True:
            step = task.expert_step(state, problem)
            yield state, step
            t = task.transition(state, step)
            if t.is_answer:
                break
            state = t.next_state


@pytest.mark.parametrize("difficulty", ["id-easy", "id-hard", "ood-hard"])
def test_every_mult_corruption_is_wrong_in_the_element_it_claims(difficulty):
    mult, rng, made = get_task("mult"), random.Random(0), set()
    for state, step in _expert_states(mult, difficulty, 25):
        kinds = mult.corruption_kinds(step)
        assert kinds == (ANSWER_KINDS if step.startswith("a") else STEP_KINDS)
        for kind in kinds:
            wrong = mult.corrupt_step(state, step, kind, rng)
            assert wrong is not None, (state, step, kind)
            assert wrong != step and mult.transition(state, wrong).valid
            assert not mult.verify(state, wrong).ok
            assert mult.diagnose(state, wrong) == kind
            made.add(kind)
    assert made == set(STEP_KINDS) | set(ANSWER_KINDS)


def test_msd_layout_corrupts_only_what_it_writes():
    msd = get_task("mult-msd")
    state, step = next(_expert_states(msd, "id-hard", 1))
    assert msd.corruption_kinds(step) == ("state",)
    assert msd.corrupt_step(state, step, "copy", random.Random(0)) is None
    wrong = msd.corrupt_step(state, step, "state", random.Random(0))
    assert wrong is not None and msd.diagnose(state, wrong) == "state"


@pytest.mark.parametrize("name", ["sudoku", "sudoku-board", "sudoku-listed", "sudoku-slots"])
def test_every_sudoku_corruption_breaks_the_rule_it_claims(name):
    sudoku, rng, made = get_task(name), random.Random(0), set()
    for difficulty in ("id-easy", "id-hard"):
        for state, step in _expert_states(sudoku, difficulty, 4):
            for kind in sudoku.corruption_kinds(step):
                wrong = sudoku.corrupt_step(state, step, kind, rng)
                if wrong is None:
                    continue
                assert sudoku.transition(state, wrong).valid and not sudoku.verify(state, wrong).ok
                assert sudoku.diagnose(state, wrong) == kind
                made.add(kind)
    assert made == {"clash", "changed"}
