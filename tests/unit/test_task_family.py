"""Every task names its family; what is per family (the reward's questions, plan temperatures)
reaches every layout, and step truth is the expert verifier's verdict."""

import random

import pytest

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import FAMILIES, TASKS, family_of, get_task, question_key, step_is_right, tasks_of


def test_every_task_belongs_to_one_family_and_the_families_cover_the_tasks():
    assert {name: family_of(name) for name in TASKS} == {
        "mult": "mult", "mult-restated": "mult", "mult-recomputed": "mult", "mult-paired": "mult", "mult-msd": "mult",
        "sudoku": "sudoku", "sudoku-listed": "sudoku",
        "sudoku-slots": "sudoku", "sudoku-board": "sudoku", "sudoku-board-restated": "sudoku"}
    assert sorted(n for f in FAMILIES for n in tasks_of(f)) == sorted(TASKS)
    with pytest.raises(ValueError, match="unknown task 'chess'"):
        family_of("chess")


def test_question_key_is_canonical_and_is_a_problem_s_query():
    assert question_key({"y": 2, "x": 1}) == question_key({"x": 1, "y": 2}) == '{"x": 1, "y": 2}'
    p = get_task("mult").generate("id-easy", random.Random(0))
    assert p.query == question_key(p.question)


@pytest.mark.parametrize("name", list(TASKS))
def test_step_truth_is_the_expert_verifier_s_verdict(name):
    task = get_task(name)
    rng = random.Random(3)
    p = task.generate("id-easy", rng)
    for state, step in expert_trace(task, p)[:3]:
        wrong = task.perturb_step(state, rng)
        assert step_is_right(task, state, step) and step_is_right(task, state, step, detailed=True)
        assert not step_is_right(task, state, wrong)
        assert step_is_right(task, state, wrong, detailed=True) == task.verify(state, wrong, detailed=True).ok


@pytest.mark.parametrize("name", list(TASKS))
def test_the_reward_request_accepts_every_task_the_verify_request_does(name):
    from cot_ray.verify.serve import RewardRequest, VerifyRequest

    task = get_task(name)
    p = task.generate("toy", random.Random(1))
    state = task.initial_state(p)
    VerifyRequest.model_validate({"items": [{"task": name, "state": state, "step": "x"}]})
    item = RewardRequest.model_validate({"items": [{"task": name, "question": p.question, "predicted": p.answer}]})
    problem = item.items[0].question.problem(item.items[0].task)
    assert problem.task == name and task.check_answer(problem, p.answer)


def test_modes_have_one_home_that_the_config_reads():
    from cot_ray.config import EvalConfig
    from cot_ray.mtp import MODES

    schema = EvalConfig.model_json_schema()
    assert tuple(schema["properties"]["modes"]["items"]["enum"]) == MODES == ("mtp", "rmtp", "rtbs")
    assert EvalConfig().modes == list(MODES)
