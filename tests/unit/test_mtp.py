import random
from statistics import mean

import pytest

from cot_ray.data.corpus import expert_trace
from cot_ray.data.splits import make_problem
from cot_ray.mtp import Completion, ExecutionConfig, ExpertPolicy, MTPExecutor, SamplingSpec, theory
from cot_ray.tasks import get_task
from cot_ray.tokenizer import Tokenizer

tok = Tokenizer()


def problems(task, level, n, seed=0):
    return [make_problem(task, level, seed, i) for i in range(n)]


@pytest.mark.parametrize("task_name", ["mult", "sudoku"])
@pytest.mark.parametrize("mode", ["mtp", "rmtp", "rtbs"])
def test_expert_solves_everything_in_every_mode(task_name, mode):
    task = get_task(task_name)
    trajs = MTPExecutor(task, ExpertPolicy(task), ExecutionConfig(mode=mode)).run(problems(task, "id-easy", 20))
    assert all(t.correct and t.finish == "answer" for t in trajs)
    assert all(t.n_rejections == 0 for t in trajs)
    # reflective modes record the expert's verification of every step; the MTP records none
    assert all((s.verification is not None) == (mode != "mtp") for t in trajs for s in t.steps)


class RandomTokens:
    """A policy that writes random token ids: every kind of malformed output."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def generate(self, prompts, specs: list[SamplingSpec]):
        return [Completion([self.rng.randrange(-3, tok.vocab_size + 3) for _ in range(self.rng.randint(0, 12))])
                for _ in prompts]


@pytest.mark.parametrize("mode", ["mtp", "rmtp", "rtbs"])
def test_malformed_outputs_are_invalid_steps_not_crashes(mode):
    task = get_task("mult")
    trajs = MTPExecutor(task, RandomTokens(0), ExecutionConfig(mode=mode, step_budget=4, reflective_budget=4)).run(
        problems(task, "id-easy", 30))
    assert all(t.finish in ("invalid", "budget", "answer") for t in trajs)
    invalid = [s for t in trajs for s in t.steps if not s.valid]
    assert invalid and all(s.error for s in invalid)
    assert not any(t.correct for t in trajs if t.finish != "answer")


class Scripted:
    """Plans the expert step; verification follows a fixed script of labels, one per call."""

    def __init__(self, task, script):
        self.expert, self.script = ExpertPolicy(task), list(script)

    def generate(self, prompts, specs):
        out = []
        for p, s in zip(prompts, specs):
            if p[-1] == tok.verify_mark_id:
                out.append(Completion(tok.encode(self.script.pop(0) + "|")))
            else:
                out.extend(self.expert.generate([p], [s]))
        return out


def test_rmtp_rejection_keeps_the_state_and_resamples():
    task = get_task("mult")
    p = make_problem(task, "id-easy", 0, 3)
    n = len(expert_trace(task, p))
    traj = MTPExecutor(task, Scripted(task, ["✗", "✗"] + ["✓"] * n), ExecutionConfig(mode="rmtp")).run([p])[0]
    assert traj.correct and len(traj.steps) == n + 2
    assert [s.rejected for s in traj.steps[:3]] == [True, True, False]
    assert traj.steps[0].state == traj.steps[1].state == traj.steps[2].state
    assert [s.attempt for s in traj.steps[:3]] == [0, 1, 2]


def test_rtbs_traces_back_after_width_rejections():
    task = get_task("mult")
    p = next(q for i in range(100) if len(expert_trace(task, q := make_problem(task, "id-hard", 0, i))) >= 3)
    # accept step 1, then reject 2 times at S1 with width 2: back to S0 (attempts 1 left there)
    script = ["✓", "✗", "✗"] + ["✓"] * 20
    cfg = ExecutionConfig(mode="rtbs", width=2)
    traj = MTPExecutor(task, Scripted(task, script), cfg).run([p])[0]
    s0 = task.initial_state(p)
    assert traj.steps[2].backtrack and traj.steps[3].state == s0 and traj.steps[3].attempt == 1
    assert traj.correct


def test_budget_ends_runs_that_never_answer():
    task = get_task("mult")
    p = next(q for i in range(100) if len(expert_trace(task, q := make_problem(task, "id-easy", 0, i))) <= 3)
    traj = MTPExecutor(task, Scripted(task, ["✗"] * 100), ExecutionConfig(mode="rmtp", reflective_budget=5,
                                                                       step_budget=3)).run([p])[0]
    # 5 rejected proposals, then verification is skipped and the expert finishes within T
    assert traj.n_rejections == 5 and traj.correct and traj.steps[5].verification is None


def _noisy_accuracy(mode, mu, e_pos, e_neg, n=400):
    task = get_task("mult")
    probs = problems(task, "id-easy", n, seed=5)
    policy = ExpertPolicy(task, step_error=1 - mu, false_positive=e_pos, false_negative=e_neg)
    trajs = MTPExecutor(task, policy, ExecutionConfig(mode=mode, seed=11)).run(probs)
    lengths = [len(expert_trace(task, p)) for p in probs]
    return mean(t.correct for t in trajs), lengths


def test_theorem_1_reflection_helps_inside_the_bound():
    mu, e_pos, e_neg = 0.8, 0.3, 0.3  # e- + e+ = 0.6 <= 1
    mtp, lengths = _noisy_accuracy("mtp", mu, e_pos, e_neg)
    rmtp, _ = _noisy_accuracy("rmtp", mu, e_pos, e_neg)
    assert rmtp > mtp + 0.1
    # and the simulation agrees with the closed forms, averaged over the problems' lengths
    assert mtp == pytest.approx(mean(theory.mtp_accuracy(mu, k) for k in lengths), abs=0.06)
    assert rmtp == pytest.approx(mean(theory.rmtp_accuracy(mu, e_neg, e_pos, k) for k in lengths), abs=0.06)


def test_theorem_1_reflection_hurts_far_outside_the_bound():
    mu, e_pos, e_neg = 0.8, 0.9, 0.9  # e- + e+ = 1.8 > 1
    mtp, _ = _noisy_accuracy("mtp", mu, e_pos, e_neg)
    rmtp, _ = _noisy_accuracy("rmtp", mu, e_pos, e_neg)
    assert rmtp < mtp - 0.1


class OneAtATime:
    """A streaming policy that hands back one completion per poll, newest request first:
    the most out-of-order a continuous-batching engine could be."""

    def __init__(self, policy):
        self.policy, self.queue = policy, []

    def submit(self, key, prompt, spec):
        self.queue.append((key, prompt, spec))

    def poll(self):
        if not self.queue:
            return []
        key, prompt, spec = self.queue.pop()
        return [(key, self.policy.generate([prompt], [spec])[0])]


def _summary(traj):
    return traj.answer, traj.finish, [(s.step, s.verification, s.rejected) for s in traj.steps]


def test_batches_of_different_modes_share_one_executor():
    """What a rollout worker does: several units in flight on one stream, each finishing on its
    own and each equal to a run of its own (the noisy expert is seeded per request)."""
    task = get_task("mult")
    policy = ExpertPolicy(task, step_error=0.2, false_positive=0.2, false_negative=0.2)
    jobs = [(problems(task, "id-easy", 6), ExecutionConfig(mode="rmtp", seed=3)),
            (problems(task, "id-hard", 3), ExecutionConfig(mode="mtp", seed=4)),
            (problems(task, "id-hard", 4, seed=1), ExecutionConfig(mode="rtbs", seed=5))]
    executor = MTPExecutor(task, OneAtATime(policy), ExecutionConfig())
    finished = []
    batches = [executor.add(ps, 7, config=cfg, on_finish=finished.append) for ps, cfg in jobs]
    while executor.busy:
        executor.step()
    assert sorted(map(id, finished)) == sorted(map(id, batches)) and all(b.done for b in batches)
    for batch, (ps, cfg) in zip(batches, jobs):
        alone = MTPExecutor(task, policy, cfg).run(ps, policy_version=7)
        assert [_summary(t) for t in batch.trajectories] == [_summary(t) for t in alone]
        assert all(t.policy_version == 7 and t.mode == cfg.mode for t in batch.trajectories)
    assert any(t.n_rejections for b in batches for t in b.trajectories)  # the noise did something
