"""Stage III's sampler: the policy's own walk, proposals at every visited state, expert labels, balance."""

import random
from collections import Counter

from cot_ray.config import ReflectiveConfig
from cot_ray.data.splits import problems
from cot_ray.evaluate import LocalPool
from cot_ray.mtp import ExpertPolicy, MTPExecutor
from cot_ray.tasks import get_task
from cot_ray.train.reflective import LabelledStep, balance_per_state, sample_verification_records

mult = get_task("mult")


class RecordingPool(LocalPool):
    """A local pool that keeps the execution config of every run."""

    def __init__(self, policy) -> None:
        super().__init__(policy)
        self.calls = []

    def run(self, task_name, probs, config, unit_size=None):
        self.calls.append(config)
        return super().run(task_name, probs, config)


def _cfg(**kw) -> ReflectiveConfig:
    return ReflectiveConfig(**{"solve_temperature": 0.75, "propose_temperature": 1.0, "seed": 0, **kw})


def test_proposals_come_from_the_states_the_walk_visited():
    pool = RecordingPool(ExpertPolicy(mult, step_error=0.3))
    queries = problems(mult, "id-easy", 30, 0, "reflective")
    records = sample_verification_records(pool, "mult", queries, _cfg(proposals=3, balance="positive-cap",
                                                                      max_positive_share=1.0))
    walk, propose = pool.calls
    assert (walk.plan_temperature, propose.plan_temperature, propose.step_budget) == (0.75, 1.0, 1)
    walked = [s.state for t in MTPExecutor(mult, pool.policy, walk).run(queries) for s in t.steps]
    per_state = Counter(r.state for r in records)
    # every visited state: its walk step plus 3 proposals (a state visited twice counts twice)
    assert per_state == Counter({s: 4 * n for s, n in Counter(walked).items()})
    # the noisy policy's wrong proposals are there, and every label is the expert's
    assert any(not r.correct for r in records) and any(r.correct for r in records)
    assert all(r.correct == mult.verify(r.state, r.step).ok for r in records)
    assert all(r.verification in ("✓", "✗") for r in records)


def test_per_state_balance_gives_every_state_as_many_right_as_wrong_steps():
    """The state must carry no information about the label: at every state the ✓ and ✗ examples
    are equally many, the greedy step is among the proposals, and the fills are labelled right."""
    pool = RecordingPool(ExpertPolicy(mult, step_error=0.3))
    queries = problems(mult, "id-easy", 40, 0, "reflective")
    records = sample_verification_records(pool, "mult", queries, _cfg(proposals=2, balance="per-state"))
    assert [c.plan_temperature for c in pool.calls] == [0.75, 1.0, 0.0]  # walk, samples, greedy
    sides: dict[str, Counter] = {}
    for r in records:
        sides.setdefault(r.state, Counter())[r.correct] += 1
    assert sides and all(c[True] == c[False] > 0 for c in sides.values())
    assert all(r.correct == mult.verify(r.state, r.step).ok for r in records)
    sources = Counter(r.source for r in records)
    assert sources["corruption"] > 0 and sources["policy"] > 0
    for r in records:
        if r.source == "corruption":
            assert not r.correct and mult.diagnose(r.state, r.step) == r.kind


def test_a_state_with_only_wrong_steps_gets_the_expert_step():
    state = mult.initial_state(problems(mult, "id-hard", 1, 0, "reflective")[0])
    wrong = [mult.corrupt_step(state, mult.expert_step(state), k, random.Random(k)) for k in ("copy", "sum", "count")]
    records = [LabelledStep(task="mult", state=state, step=w, verification="✗", correct=False) for w in wrong]
    out = balance_per_state(mult, records, detailed=False, rng=random.Random(0))
    right = [r for r in out if r.correct]
    assert len(right) == 3 == len(out) - len(right)
    assert {r.step for r in right} == {mult.expert_step(state)} and {r.source for r in right} == {"expert"}


def test_per_state_fills_draw_the_policys_failure_kinds_most():
    """Corruption kinds follow the kinds of the policy's own wrong steps (plus one each)."""
    rng = random.Random(0)
    records = []
    for q in problems(mult, "id-hard", 60, 0, "reflective"):
        state = mult.initial_state(q)
        right = mult.expert_step(state)
        records.append(LabelledStep(task="mult", state=state, step=right, verification="✓", correct=True))
    state0 = records[0].state
    copy_errors = [LabelledStep(task="mult", state=state0, step=mult.corrupt_step(state0, records[0].step, "copy",
                                                                                    random.Random(i)),
                                verification="✗", correct=False) for i in range(30)]
    out = balance_per_state(mult, records + copy_errors, detailed=False, rng=rng)
    kinds = Counter(r.kind for r in out if r.source == "corruption")
    assert kinds.most_common(1)[0][0] == "copy" and len(kinds) > 2


def test_every_kind_corrupts_each_element_kind_at_every_state_and_stays_balanced():
    """``every_kind``: one corruption of every kind the right step allows, at each state, each
    wrong in the kind it claims; the ✓ side repeated to as many examples."""
    records = []
    for q in problems(mult, "id-hard", 20, 0, "reflective"):
        state = mult.initial_state(q)
        records.append(LabelledStep(task="mult", state=state, step=mult.expert_step(state), verification="✓",
                                    correct=True))
    out = balance_per_state(mult, records, detailed=True, rng=random.Random(0), every_kind=True)
    plain = balance_per_state(mult, records, detailed=True, rng=random.Random(0))
    for r in records:
        at = [o for o in out if o.state == r.state]
        wrong = [o for o in at if not o.correct]
        assert {o.kind for o in wrong} == set(mult.corruption_kinds(r.step))
        assert all(mult.diagnose(o.state, o.step) == o.kind and not mult.verify(o.state, o.step, True).ok
                   for o in wrong)
        assert sum(o.correct for o in at) == len(wrong)
    assert len(out) > 4 * len(plain)


def test_detailed_labels_and_positive_cap():
    pool = LocalPool(ExpertPolicy(mult, step_error=0.3))
    queries = problems(mult, "id-easy", 30, 0, "reflective")
    records = sample_verification_records(pool, "mult", queries, _cfg(proposals=2, verification="detailed",
                                                                      balance="positive-cap"))
    positives = sum(r.correct for r in records)
    assert 0 < positives <= len(records) - positives  # at most half are correct steps
    assert any(len(r.verification) > 1 for r in records)  # one label per element


def test_planning_examples_carry_labels_only_when_asked():
    from cot_ray.data.corpus import make_table
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.train.data import sft_batch
    from cot_ray.train.stages import planning_labels

    assert planning_labels(ReflectiveConfig(planning_labels=False)) is None  # plain state -> step examples
    on = ReflectiveConfig()  # the default: the expert's labels, with the loss on them
    assert planning_labels(on) == "binary"
    assert planning_labels(ReflectiveConfig(verification="optional", planning_labels=True)) == "detailed"
    table = make_table("mult", "id-easy", 0, 0, 3)
    tok = Tokenizer()
    labelled = sft_batch(table, planning_labels(on)).column("ids").to_pylist()
    plain = sft_batch(table, planning_labels(ReflectiveConfig(planning_labels=False))).column("ids").to_pylist()
    assert all("✓" in tok.decode(ids) for ids in labelled) and not any("✓" in tok.decode(ids) for ids in plain)


def test_the_mixture_keeps_the_verification_share_and_the_same_planning_examples():
    from cot_ray.data.corpus import make_table
    from cot_ray.train.data import sft_batch
    from cot_ray.train.stages import Mixture

    mix = Mixture.of(10_000, 1_000, ReflectiveConfig(verification_share=0.5, verification_repeats=2))
    assert (mix.planning, mix.verification) == (2_000, 2_000) and mix.planning_share == 0.5
    assert Mixture.of(10_000, 1_000, ReflectiveConfig()).planning_fraction == 1.0
    table = make_table("mult", "id-hard", 0, 0, 200)
    every = sft_batch(table).column("ids").to_pylist()
    half = sft_batch(table, fraction=0.5).column("ids").to_pylist()
    assert 0.4 < len(half) / len(every) < 0.6
    assert half == sft_batch(table, fraction=0.5).column("ids").to_pylist()  # the same ones every time
    assert all(ids in every for ids in half)
