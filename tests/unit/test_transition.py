"""The RMTP's reflective transition: one rule for the executor, the envs and the metrics."""

from cot_ray.mtp.transition import CUT_OFF, reflective_transition, rejects
from cot_ray.tasks import Problem, get_task

TASK = get_task("mult")
STATE = TASK.initial_state(Problem("mult", "id-easy", {"x": 23, "y": 41}, "943"))
STEP = TASK.expert_step(STATE)


def test_any_cross_rejects_and_no_verification_never_does():
    assert rejects("✗") and rejects("✓✓✗✓")
    assert not rejects("✓✓✓") and not rejects("") and not rejects(None)


def test_a_rejected_step_stays_even_if_it_was_right():
    assert reflective_transition(TASK, STATE, STEP, True, "✗").kind == "reject"


def test_an_accepted_step_moves_with_t_and_a_cut_off_one_is_invalid():
    move = reflective_transition(TASK, STATE, STEP, True, "✓")
    assert move.kind == "next" and move.state == TASK.transition(STATE, STEP).next_state
    assert reflective_transition(TASK, STATE, STEP, False, None) == reflective_transition(
        TASK, STATE, STEP, False, "✓")
    assert reflective_transition(TASK, STATE, STEP, False, None).error == CUT_OFF
    garbled = reflective_transition(TASK, STATE, "no step here", True, "")
    assert garbled.kind == "invalid" and garbled.error
