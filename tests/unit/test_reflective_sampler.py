"""Stage III's sampler: the policy's own walk, proposals at every visited state, expert labels."""

from collections import Counter

from cot_ray.data.splits import problems
from cot_ray.evaluate import LocalPool
from cot_ray.mtp import ExpertPolicy, MTPExecutor
from cot_ray.tasks import get_task
from cot_ray.train.reflective import sample_verification_records

mult = get_task("mult")


class RecordingPool(LocalPool):
    """A local pool that keeps the execution config of every run."""

    def __init__(self, policy) -> None:
        super().__init__(policy)
        self.calls = []

    def run(self, task_name, probs, config, unit_size=None):
        self.calls.append(config)
        return super().run(task_name, probs, config)


def test_proposals_come_from_the_states_the_walk_visited():
    pool = RecordingPool(ExpertPolicy(mult, step_error=0.3))
    queries = problems(mult, "id-easy", 30, 0, "reflective")
    records = sample_verification_records(pool, "mult", queries, solve_temperature=0.75, propose_temperature=1.0,
                                          proposals=3, verification="binary", max_positive_share=1.0, seed=0)
    walk, propose = pool.calls
    assert (walk.plan_temperature, propose.plan_temperature, propose.step_budget) == (0.75, 1.0, 1)
    walked = [s.state for t in MTPExecutor(mult, pool.policy, walk).run(queries) for s in t.steps]
    per_state = Counter(r["state"] for r in records)
    # every visited state: its walk step plus 3 proposals (a state visited twice counts twice)
    assert per_state == Counter({s: 4 * n for s, n in Counter(walked).items()})
    # the noisy policy's wrong proposals are there, and every label is the expert's
    assert any(not r["correct"] for r in records) and any(r["correct"] for r in records)
    assert all(r["correct"] == mult.verify(r["state"], r["step"]).ok for r in records)
    assert all(r["verification"] in ("✓", "✗") for r in records)


def test_detailed_labels_and_positive_cap():
    pool = LocalPool(ExpertPolicy(mult, step_error=0.3))
    queries = problems(mult, "id-easy", 30, 0, "reflective")
    records = sample_verification_records(pool, "mult", queries, 0.75, 1.0, proposals=2, verification="detailed",
                                          max_positive_share=0.5, seed=0)
    positives = sum(r["correct"] for r in records)
    assert 0 < positives <= len(records) - positives  # at most half are correct steps
    assert any(len(r["verification"]) > 1 for r in records)  # one label per element


def test_expert_pairs_put_a_correct_step_beside_every_wrong_one():
    """Every state with a wrong sampled step also holds the expert's step, labelled correct, and the
    positive cap keeps those partners first."""
    queries = problems(mult, "id-easy", 30, 0, "reflective")
    records = sample_verification_records(LocalPool(ExpertPolicy(mult, step_error=0.5)), "mult", queries, 0.75, 1.0,
                                          proposals=2, verification="binary", max_positive_share=0.5, seed=0,
                                          expert_pairs=True)
    wrong_states = {r["state"] for r in records if not r["correct"]}
    partners = {r["state"]: r for r in records if r["source"] == "expert"}
    assert wrong_states and set(partners) == wrong_states
    assert all(p["correct"] and p["step"] == mult.expert_step(s) and p["verification"] == "✓"
               for s, p in partners.items())
    plain = sample_verification_records(LocalPool(ExpertPolicy(mult, step_error=0.5)), "mult", queries, 0.75, 1.0,
                                        proposals=2, verification="binary", max_positive_share=0.5, seed=0)
    assert all(r["source"] == "policy" for r in plain)


def test_planning_examples_carry_labels_unless_turned_off():
    from cot_ray.config import ReflectiveConfig
    from cot_ray.data.corpus import make_table
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.train.data import sft_batch
    from cot_ray.train.stages import planning_labels

    assert planning_labels(ReflectiveConfig()) == "binary"
    assert planning_labels(ReflectiveConfig(verification="optional")) == "detailed"
    off = ReflectiveConfig(planning_labels=False)
    assert planning_labels(off) is None
    table = make_table("mult", "id-easy", 0, 0, 3)
    tok = Tokenizer()
    labelled = sft_batch(table, planning_labels(ReflectiveConfig())).column("ids").to_pylist()
    plain = sft_batch(table, planning_labels(off)).column("ids").to_pylist()
    assert all("✓" in tok.decode(ids) for ids in labelled) and not any("✓" in tok.decode(ids) for ids in plain)
