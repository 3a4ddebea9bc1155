"""Within-state AUC, pooled AUC and the paired interval: the measures that decide between stage-III arms."""

import random
from dataclasses import replace

import pytest

from cot_ray.stats import diff_interval, paired_interval, rank_pairs
from cot_ray.verify.discrimination import Proposal, discrimination


def _p(state: str, correct: bool, greedy: bool = False) -> Proposal:
    return Proposal(state=state, step=f"{state}-{correct}-{greedy}-{random.random()}", correct=correct, greedy=greedy,
                    n_labels=1)


def test_a_verifier_that_judges_the_state_has_within_state_auc_one_half():
    """Hard states (mostly wrong steps) get low scores, easy ones high, whatever the step: the pooled
    AUC looks good, the within-state AUC shows it checks nothing."""
    props, scores = [], []
    for k in range(20):
        hard = k % 2 == 0
        for j in range(6):
            props.append(_p(f"s{k}", correct=(j == 0) if hard else (j != 0)))
            scores.append(0.1 if hard else 0.9)
    d = discrimination(props, scores)
    assert d.within_state_auc == pytest.approx(0.5)
    assert d.pooled_auc > 0.8 and d.states == 20


def test_a_verifier_that_checks_the_step_has_within_state_auc_one():
    props = [_p(f"s{k}", c) for k in range(10) for c in (True, False, False)]
    scores = [0.6 if p.correct else 0.4 for p in props]
    d = discrimination(props, scores)
    assert d.within_state_auc == 1.0 and d.wrong == 20 and d.wrong_acceptance == pytest.approx(0.4)
    flipped = discrimination(props, [1 - s for s in scores])
    assert flipped.within_state_auc == 0.0


def test_greedy_and_sampled_right_steps_are_averaged_at_the_same_states():
    props = [_p("a", True, greedy=True), _p("a", True), _p("a", False), _p("b", True, greedy=True)]
    d = discrimination(props, [0.9, 0.3, 0.2, 0.8])
    # state b holds no wrong step, so its greedy step is not in the comparison
    assert (d.greedy_right_acceptance, d.sampled_right_acceptance) == (0.9, 0.3)


@pytest.mark.parametrize("task_name", ["mult", "sudoku"])
def test_expert_probes_pair_the_experts_step_with_one_wrong_element_of_each_kind(task_name):
    from cot_ray.tasks import get_task, step_is_right
    from cot_ray.verify.discrimination import expert_probes

    task, rng = get_task(task_name), random.Random(0)
    probs = [task.generate("id-easy", rng) for _ in range(3)]
    probes = expert_probes(task, probs, random.Random(1), detailed=True)
    right = {p.state: p for p in probes if p.correct}
    wrong = [p for p in probes if not p.correct]
    assert wrong and all(p.state in right and not step_is_right(task, p.state, p.step) for p in wrong)
    assert all(p.kind in task.corruption_kinds(right[p.state].step) for p in wrong)
    if task_name == "mult":  # the corruption breaks the element it names first
        assert all(task.diagnose(p.state, p.step) == p.kind for p in wrong)
    assert all(p.n_labels == len(task.verify(p.state, p.step, detailed=True).labels) for p in probes)
    first = task.initial_state(probs[0])
    assert first in right  # the path starts at the problem's first state


def test_by_kind_tells_which_element_the_verifier_checks():
    from cot_ray.verify.discrimination import by_kind

    props = [p for k in range(8) for p in (_p(f"s{k}", True), replace(_p(f"s{k}", False), kind="product"),
                                           replace(_p(f"s{k}", False), kind="copy"))]
    props.append(replace(_p("alone", False), kind="sum"))  # no right step at its state: not ranked
    scores = [0.9 if p.correct else 0.1 if p.kind == "product" else 0.9 for p in props]
    kinds = {k.kind: k for k in by_kind(props, scores)}
    assert set(kinds) == {"product", "copy"}
    assert kinds["product"].within_state_auc == 1.0 and kinds["copy"].within_state_auc == 0.5
    assert kinds["product"].pairs == 8 and kinds["copy"].wrong_acceptance == pytest.approx(0.9)


def test_rank_pairs_counts_ties_as_half():
    assert rank_pairs([0.5, 0.7], [0.5, 0.1]) == (3.5, 4)


def test_paired_interval_is_narrower_than_the_unpaired_one_when_outcomes_agree():
    rng = random.Random(0)
    a = [rng.random() < 0.7 for _ in range(500)]
    b = [x if rng.random() < 0.95 else not x for x in a]  # the same problems, 5% of outcomes flipped
    d, low, high = paired_interval(a, b)
    ulow, uhigh = diff_interval(sum(a), len(a), sum(b), len(b))
    assert d == pytest.approx((sum(a) - sum(b)) / 500)
    assert low <= d <= high and high - low < 0.5 * (uhigh - ulow)


def test_paired_interval_excludes_zero_for_a_clear_gain_and_holds_it_for_none():
    a = [True] * 60 + [False] * 40
    better = [True] * 75 + [False] * 25  # every problem a solves, plus 15 more
    _, low, high = paired_interval(better, a)
    assert low > 0
    _, low, high = paired_interval(a, list(a))
    assert low <= 0 <= high
    with pytest.raises(ValueError, match="same problems"):
        paired_interval(a, a[:-1])


def test_acceptance_is_the_teacher_forced_chance_of_all_positive_labels(tmp_path):
    """Batched and padded scoring equals a one-sequence forward pass, label by label."""
    import torch

    from cot_ray.model import build_model, load_model, save_checkpoint
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.verify.scoring import acceptance

    save_checkpoint(build_model("tiny", seed=3, max_positions=256), tmp_path)
    props = [Proposal(state="21*3+0", step="x1:20:03=3;0+3=3;20*3+3", correct=True, greedy=True, n_labels=1),
             Proposal(state="5*7+0", step="y7:0:35=53;00+53=53;5*0+53", correct=True, greedy=False, n_labels=3)]
    got = acceptance(str(tmp_path), props, batch_size=2)
    tok, model = Tokenizer(), load_model(str(tmp_path)).eval()
    yes, no = tok.token_to_id["✓"], tok.token_to_id["✗"]
    for p, a in zip(props, got):
        prompt = tok.verify_prompt(p.state, p.step)
        logits = model(input_ids=torch.tensor([prompt + [yes] * (p.n_labels - 1)])).logits[0]
        pair = torch.softmax(logits[len(prompt) - 1:, [yes, no]], dim=-1)[:, 0]
        assert a == pytest.approx(float(pair.prod()), rel=1e-4)
        assert 0 < a < 1


def test_marked_verifications_are_decoded_greedily_with_accepting_labels(tmp_path):
    """A verification with marks is the checkpoint's own: batched, left-padded, KV-cached decoding
    reads P(✓) wherever the likeliest token is a label and feeds ✓ there, exactly as a one-sequence
    greedy loop without a cache does; marks are never teacher-forced."""
    import torch

    from cot_ray.model import build_model, save_checkpoint
    from cot_ray.tokenizer import Tokenizer
    from cot_ray.verify.scoring import _decoded

    tok = Tokenizer()
    yes, no = tok.token_to_id["✓"], tok.token_to_id["✗"]
    model = build_model("tiny", seed=5, max_positions=256).eval()
    with torch.no_grad():  # labels likely at some positions, so that marks and labels both occur
        model.lm_head.weight[[yes, no]] *= 6
    save_checkpoint(model, tmp_path)
    props = [Proposal(state=s, step=st, correct=True, greedy=False, n_labels=2, marks=("1", ""))
             for s, st in [("21*3+0", "x1:20:03=3;0+3=3;20*3+3"), ("5*7+0", "y7:0:35=53;00+53=53;5*0+53"),
                           ("1503*72+0", "y7:02:07,35,03,21=75312;00000+75312=75312;1503*02+75312")]]
    got = _decoded(model, props, batch_size=2, max_tokens=16)
    stops, labels_seen, marks_seen = (tok.verify_mark_id, tok.eos_id), 0, 0
    for p, probs in zip(props, got):
        seq, want = tok.verify_prompt(p.state, p.step), []
        for _ in range(16):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt in (yes, no):
                want.append(float(torch.softmax(logits[[yes, no]], dim=-1)[0]))
                nxt = yes
            else:
                marks_seen += nxt not in stops
            if nxt in stops:
                break
            seq.append(nxt)
        labels_seen += len(want)
        assert probs == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert labels_seen and marks_seen  # the test exercised both


def test_at_wrong_element_compares_the_wrong_label_with_the_same_label_of_a_right_step():
    """A verifier that doubts the wrong product itself scores 1 on products; one whose doubt sits
    at a label position whatever is written there scores 0.5 on copies, however long the steps."""
    from cot_ray.verify.discrimination import at_wrong_element

    def prop(state: str, correct: bool, first_wrong: int | None = None, kind: str | None = None) -> Proposal:
        return Proposal(state=state, step=f"{state}{kind}", correct=correct, greedy=False, n_labels=3,
                        kind=kind, first_wrong=first_wrong)

    props = [prop("a", True), prop("a", False, 1, "product"), prop("a", False, 2, "copy"), prop("b", False, 0, "sum")]
    labels = [[0.9, 0.9, 0.4], [0.9, 0.1, 0.9], [0.9, 0.9, 0.4], [0.1, 0.9, 0.9]]
    got = {k.kind: k for k in at_wrong_element(props, labels)}
    assert got["product"].within_state_auc == 1.0 and got["product"].wrong_acceptance == pytest.approx(0.1)
    assert got["copy"].within_state_auc == 0.5 and got["copy"].pairs == 1
    assert "sum" not in got  # no right step at state b to compare with
