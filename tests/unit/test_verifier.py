import random
import subprocess
import sys

import pytest

from cot_ray.data.corpus import expert_trace
from cot_ray.data.splits import make_problem
from cot_ray.mtp import ExecutionConfig, ExpertPolicy, MTPExecutor, StepRecord, Trajectory
from cot_ray.mtp.trajectory import reflection_frequency
from cot_ray.tasks import get_task
from cot_ray.verify import ExpertVerifier, RewardModel, VerificationCounts, rejections_by_truth, verification_counts

verifier = ExpertVerifier()


def problems(task, level, n, seed=0):
    return [make_problem(task, level, seed, i) for i in range(n)]


def noisy_run(task_name, mode, n, level="id-easy", detailed=False, **noise):
    task = get_task(task_name)
    policy = ExpertPolicy(task, detailed=detailed, **noise)
    return MTPExecutor(task, policy, ExecutionConfig(mode=mode, seed=7)).run(problems(task, level, n))


@pytest.mark.parametrize("task_name,level", [("mult", "id-hard"), ("sudoku", "id-easy")])
@pytest.mark.parametrize("detailed", [False, True])
def test_expert_steps_are_accepted_and_perturbed_steps_rejected(task_name, level, detailed):
    task, rng = get_task(task_name), random.Random(0)
    trace = [pair for p in problems(task, level, 10) for pair in expert_trace(task, p)]
    good = verifier.verify_batch({"task": task_name, "state": s, "step": r, "detailed": detailed} for s, r in trace)
    bad = verifier.verify_batch({"task": task_name, "state": s, "step": task.perturb_step(s, rng), "detailed": detailed}
                                for s, _ in trace)
    assert all(v.ok for v in good) and not any(v.ok for v in bad)
    lengths = {len(v.labels) for v in good}
    if detailed and task_name == "sudoku":  # one label per cell the step filled
        assert [len(v.labels) for v in good] == [max(1, sum(a != b for a, b in zip(s, r[-81:]))) for s, r in trace]
    elif detailed:
        assert max(lengths) > 1  # one label per written computation
    else:
        assert all(len(v.labels) == 1 for v in good + bad)


def test_malformed_step_is_wrong_but_malformed_state_or_task_is_an_error():
    assert verifier.verify("mult", "3051*27+0", "not a step").text() == "✗"
    assert verifier.verify("sudoku", "0" * 81, "0" * 600, detailed=True).text() == "✗"
    with pytest.raises(ValueError, match="mult state"):
        verifier.verify("mult", "3051*27", "a82377")
    with pytest.raises(ValueError, match="81 digits"):
        verifier.verify("sudoku", "12", "a")
    with pytest.raises(ValueError, match="unknown task 'chess'; expected one of mult, .*sudoku"):
        verifier.verify("chess", "e4", "e5")


def test_reward_is_the_outcome_check_and_ignores_the_recorded_flag():
    trajs = noisy_run("mult", "mtp", 60, step_error=0.3)
    model = RewardModel()
    rewards = model.rewards(trajs)
    assert rewards == [float(t.correct) for t in trajs]
    assert 0.0 in rewards and 1.0 in rewards
    liar = trajs[rewards.index(0.0)]
    liar.correct = True  # a producer's claim is not evidence
    assert model.reward(liar) == 0.0
    p = trajs[0].problem
    assert model.outcome(p, p.answer) == 1.0 and model.outcome(p, p.answer + "1") == 0.0
    assert model.outcome(p, None) == 0.0


def test_first_error_is_the_first_accepted_wrong_step():
    model = RewardModel()
    trajs = noisy_run("mult", "rmtp", 80, step_error=0.3, false_positive=0.5, false_negative=0.2)
    cut = model.first_errors(trajs)
    assert any(i is None for i in cut) and any(i is not None for i in cut)
    rejected_errors_passed = 0
    for t, i in zip(trajs, cut):
        truth = [verifier.verify("mult", s.state, s.step).ok for s in t.steps]
        end = len(t.steps) if i is None else i
        assert all(truth[k] for k in range(end) if not t.steps[k].rejected)
        rejected_errors_passed += sum(not truth[k] for k in range(end) if t.steps[k].rejected)
        if i is not None:
            assert not t.steps[i].rejected and not truth[i]
        # on multiplication an accepted error is never undone: no correct answer follows it
        if t.finish == "answer":
            assert t.correct == (i is None)
    assert rejected_errors_passed > 0  # wrong steps the policy itself rejected do not cut


@pytest.mark.parametrize("detailed", [False, True])
def test_measured_error_rates_match_the_noisy_experts_rates(detailed):
    e_plus, e_minus = 0.2, 0.3
    trajs = noisy_run("mult", "rmtp", 400, detailed=detailed, step_error=0.4,
                      false_positive=e_plus, false_negative=e_minus)
    c = verification_counts(trajs, detailed=detailed)
    assert c.wrong >= 300 and c.right >= 300, c
    assert abs(c.e_plus - e_plus) < 0.05, c.to_dict()
    assert abs(c.e_minus - e_minus) < 0.05, c.to_dict()
    # within the reflective budget every RMTP step carries a verification
    assert reflection_frequency(trajs) == 1.0
    # only first attempts count: more steps were judged in total than were measured
    assert sum(1 for t in trajs for s in t.steps if s.verification) > c.wrong + c.right


def test_sudoku_error_rates_and_a_perfect_verifier():
    trajs = noisy_run("sudoku", "rmtp", 40, step_error=0.3, false_positive=0.0, false_negative=0.0)
    c = verification_counts(trajs)
    assert c.wrong > 10 and c.right > 10
    assert c.e_plus == 0.0 and c.e_minus == 0.0


def test_counts_follow_the_papers_rules_on_a_hand_made_trajectory():
    task = get_task("mult")
    p = make_problem(task, "id-easy", 0, 1)
    s0 = task.initial_state(p)
    good, bad = task.expert_step(s0), task.perturb_step(s0, random.Random(0))
    s1 = task.transition(s0, good).next_state
    steps = [
        StepRecord(s0, bad, "✓", attempt=0),                     # wrong, accepted: false positive
        StepRecord(s0, bad, "✓", attempt=1),                     # a retry at the same state: ignored
        StepRecord(s0, good, "✓✓✗", rejected=True, attempt=1),   # retry: ignored
        StepRecord(s0, good, "", attempt=2),                     # skipped verification: ignored
        StepRecord(s1, task.expert_step(s1), "✓✗✓", attempt=0),  # right, rejected: false negative
        StepRecord(s1, bad, None, attempt=0),                    # no verification asked: ignored
    ]
    c = verification_counts([Trajectory(p, "rmtp", steps)])
    assert c == VerificationCounts(wrong=1, wrong_accepted=1, right=1, right_rejected=1)
    total = c + c
    assert total.to_dict() == {"wrong": 2, "wrong_accepted": 2, "right": 2, "right_rejected": 2,
                               "e_plus": 1.0, "e_minus": 1.0}
    assert reflection_frequency([Trajectory(p, "rmtp", steps)]) == 4 / 6  # non-empty verifications
    empty = VerificationCounts()
    assert empty.e_plus is None and empty.e_minus is None and reflection_frequency([]) is None
    # the same judgements split by truth: the wrong step is "broken" (mult has no dead ends)
    assert rejections_by_truth(task, [Trajectory(p, "rmtp", steps)]) == {
        "sound": [1, 1], "broken": [0, 1], "wrong-guess": [0, 0]}


def test_sudoku_wrong_guesses_are_counted_apart_from_broken_rules():
    task = get_task("sudoku")
    p = make_problem(task, "id-hard", 0, 1)
    puzzle, solution = p.question["puzzle"], p.answer
    cell = next(i for i, ch in enumerate(puzzle) if ch == "0")
    wrong = next(
        (c, v) for c in range(81) if puzzle[c] == "0" for v in "123456789"
        if v != solution[c] and task.verify(puzzle, f"?{c // 9}{c % 9}{v};{puzzle[:c]}{v}{puzzle[c + 1:]}").ok
        and task.dead_end(puzzle, f"?{c // 9}{c % 9}{v};{puzzle[:c]}{v}{puzzle[c + 1:]}"))
    c, v = wrong
    guess = f"?{c // 9}{c % 9}{v};{puzzle[:c]}{v}{puzzle[c + 1:]}"
    steps = [StepRecord(puzzle, guess, "✓"), StepRecord(puzzle, task.expert_step(puzzle, p), "✗"),
             StepRecord(puzzle, task.perturb_step(puzzle, random.Random(cell)), "✗"),
             StepRecord(puzzle, "garbage", "✓", valid=False)]
    assert rejections_by_truth(task, [Trajectory(p, "rmtp", steps)]) == {
        "sound": [1, 1], "broken": [1, 2], "wrong-guess": [0, 1]}


def test_scoring_code_imports_no_ray():
    code = "import sys, cot_ray.verify; heavy = {'ray', 'torch', 'vllm'} & set(sys.modules); assert not heavy, heavy"
    subprocess.run([sys.executable, "-c", code], check=True)
