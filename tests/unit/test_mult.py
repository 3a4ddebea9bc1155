import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import Problem, get_task
from cot_ray.tasks.mult import DIGIT_RANGES, LsdLayout, MsdLayout, Multiplication

mult = get_task("mult")
LAYOUTS = [get_task("mult"), get_task("mult-msd")]
operand = st.integers(min_value=1, max_value=10**10 - 1)


def _problem(x: int, y: int) -> Problem:
    return Problem("mult", "id-easy", {"x": x, "y": y}, str(x * y))


@pytest.mark.parametrize("task", LAYOUTS, ids=lambda t: t.name)
@given(x=operand, y=operand)
@settings(max_examples=200, deadline=None)
def test_expert_trace_reaches_the_product(task, x, y):
    p = _problem(x, y)
    trace = expert_trace(task, p)
    state, step = trace[-1]
    t = task.transition(state, step)
    assert t.is_answer and int(t.answer) == x * y
    assert task.check_answer(p, t.answer)
    # the invariant x_t * y_t + r_t = x * y holds in every state
    for s, _ in trace:
        a, b, r = task.layout.parse_state(s)
        assert a * b + r == x * y


@pytest.mark.parametrize("task", LAYOUTS, ids=lambda t: t.name)
@given(x=operand, y=operand)
@settings(max_examples=150, deadline=None)
def test_expert_steps_verify_positive_in_both_modes(task, x, y):
    for state, step in expert_trace(task, _problem(x, y)):
        assert task.verify(state, step).labels == (True,)
        detailed = task.verify(state, step, detailed=True)
        assert detailed.ok and len(detailed.labels) >= 1
        assert task.diagnose(state, step) is None


@pytest.mark.parametrize("task", LAYOUTS, ids=lambda t: t.name)
@given(x=operand, y=operand, seed=st.integers(0, 2**32))
@settings(max_examples=150, deadline=None)
def test_perturbed_steps_are_well_formed_but_rejected(task, x, y, seed):
    state = task.initial_state(_problem(x, y))
    step = task.perturb_step(state, random.Random(seed))
    assert task.transition(state, step).valid
    assert not task.verify(state, step).ok
    assert not task.verify(state, step, detailed=True).ok
    assert task.diagnose(state, step) in ("state", "answer")


def test_lsd_layout_writes_every_number_units_first_and_aligns_additions():
    state = mult.initial_state(_problem(3051, 27))
    assert state == "1503*72+0"
    step = mult.expert_step(state)
    assert step == "y7:02:07,35,03,21=75312;00000+75312=75312;1503*02+75312"
    nxt = mult.transition(state, step).next_state
    assert mult.expert_step(nxt) == "y2:00:02,10,01,06=2016;75312+02016=77328;1503*00+77328"
    assert mult.transition("1503*00+77328", "a77328").answer == "82377"


def test_lsd_layout_writes_one_addition_per_occurrence_of_the_digit():
    state = mult.initial_state(_problem(85220, 1234))  # 2 appears twice in x: add 2*1234 at 10 and 100
    head, *adds, new_state = mult.expert_step(state).split(";")
    assert head == "x2:00058:08,06,04,02=8642"
    assert adds == ["00000+08642=08642", "086420+008642=084172"]  # 24680, then + 246800 = 271480
    assert new_state == "00058*4321+084172"


@pytest.mark.parametrize("edit, kind", [
    (lambda s: s.replace(":07,35,", ":07,45,"), "product"),  # 7*5 written 45
    (lambda s: s.replace(":07,35,03,", ":07,35,04,"), "carry"),  # 7*0 + carry 3 written 04
    (lambda s: s.replace("=75312;", "=75313;"), "delta"),
    (lambda s: s.replace("00000+75312=75312", "00000+75312=75322"), "sum"),
    (lambda s: s.replace("00000+75312", "00000+07531"), "align"),
    (lambda s: s.replace("y7:02:", "y7:72:"), "operand"),
    (lambda s: s.replace(";1503*02+75312", ";1503*02+75313"), "state"),
    (lambda s: s.replace("00000+75312=75312;", ""), "count"),
    (lambda s: s.replace("y7:", "y5:"), "choice"),
    (lambda s: s[:20], "format"),
])
def test_diagnose_names_the_first_wrong_element(edit, kind):
    state = "1503*72+0"
    good = mult.expert_step(state)
    bad = edit(good)
    assert bad != good
    assert mult.diagnose(state, bad) == kind
    labels = mult.verify(state, bad, detailed=True).labels
    assert not all(labels)


def test_detailed_labels_point_at_the_wrong_element_in_the_msd_layout():
    msd = get_task("mult-msd")
    state = "3051*27+0"
    good = msd.expert_step(state)
    assert good == "y7:07,35,03,21=21357;21357;3051*20+21357"
    bad_product = good.replace("35,", "36,")  # second digit product wrong, rest as the expert
    labels = msd.verify(state, bad_product, detailed=True).labels
    assert labels == (True, True, False, True, True, True, True, True)
    assert msd.verify(state, bad_product).ok  # binary only checks the invariant, which holds


@pytest.mark.parametrize("task", LAYOUTS, ids=lambda t: t.name)
@given(text=st.text(alphabet="0123456789*+=,;:?axy", max_size=60))
@settings(max_examples=300, deadline=None)
def test_transition_flags_malformed_steps_and_never_raises(task, text):
    state = task.initial_state(_problem(12, 34))
    t = task.transition(state, text)
    if not t.valid:
        assert t.error
    else:
        assert t.is_answer or task.layout.parse_state(t.next_state) is not None
    task.verify(state, text, detailed=True)  # never raises
    task.diagnose(state, text)


def test_generator_respects_difficulty_digit_ranges():
    rng = random.Random(0)
    for level, (lo, hi) in DIGIT_RANGES.items():
        for _ in range(100):
            q = mult.generate(level, rng).question
            assert lo <= max(len(str(q["x"])), len(str(q["y"]))) <= hi


def test_generator_covers_the_digit_grid_evenly():
    rng = random.Random(0)
    cells = [tuple(len(str(v)) for v in mult.generate("id-easy", rng).question.values()) for _ in range(5000)]
    assert len(set(cells)) == 25  # every (digits of x, digits of y) with max 1..5
    assert cells.count((1, 1)) / len(cells) < 0.07  # one-digit products: 1/25, not a fifth


def test_generator_is_seeded():
    a = [mult.generate("id-hard", random.Random(7)) for _ in range(3)]
    b = [mult.generate("id-hard", random.Random(7)) for _ in range(3)]
    assert a == b


def test_the_longest_ood_hard_expert_step_fits_the_step_budget_and_the_1m_context():
    from cot_ray.mtp import ExecutionConfig
    from cot_ray.tokenizer import Tokenizer

    tok, task = Tokenizer(), get_task("mult")
    # one step removes every 9 of y: ten aligned additions of 20-digit numbers in one step
    state = task.initial_state(Problem("mult", "ood-hard", {"x": 9_999_999_999, "y": 9_999_999_999}, ""))
    step = len(tok.encode(task.expert_step(state) + "}"))
    assert 500 < step <= ExecutionConfig().max_step_tokens
    assert len(tok.plan_prompt(state)) + step <= 768  # cpu-small's max_positions


def test_recomputed_verifications_of_sampled_ood_hard_expert_paths_fit_the_verification_budget():
    from cot_ray.mtp import ExecutionConfig

    task, rng, longest = get_task("mult-recomputed"), random.Random(3), 0
    for _ in range(200):
        state = task.initial_state(task.generate("ood-hard", rng))
        while state is not None:
            step = task.expert_step(state)
            longest = max(longest, len(task.verify(state, step, detailed=True).text()) + 1)  # and the closing |
            state = task.transition(state, step).next_state
    assert 150 < longest <= ExecutionConfig().max_verify_tokens


def test_restated_verification_writes_each_check_s_inputs_from_the_written_step():
    """Before each product's label: the other operand's digit, u and the tens digit of the product
    *written* before it; before each copy: the number copied. A wrong product changes the next
    one's restated carry, never to the expert's value."""
    restated, state = get_task("mult-restated"), "1503*72+0"
    good = restated.expert_step(state)  # y7:02:07,35,03,21=75312;00000+75312=75312;1503*02+75312
    v = restated.verify(state, good, detailed=True)
    assert v.ok and len(v.marks) == len(v.labels)
    assert [m for m in v.marks if m] == ["170", "570", "073", "370", "0"]
    assert v.text().startswith("✓✓170✓570✓073✓370✓✓0✓")
    bad = restated.verify(state, good.replace("35,03", "45,03"), detailed=True)
    assert [m for m in bad.marks if m][:4] == ["170", "570", "074", "370"]
    assert bad.labels[2:6] == (True, False, False, True)  # 5*7+0 != 45; 0*7+4 != 03, locally judged
    assert not bad.ok


def test_recomputed_verification_writes_each_product_s_and_sum_s_right_value_beside_the_written_one():
    """Recomputed: each product's inputs, the written w_j, then = and d_j*u+c; each sum after =
    the right sum of the two numbers written before it. A label is a comparison of two adjacent
    numbers, and a wrong element's right value is the local one, never the expert's."""
    task, state = get_task("mult-recomputed"), "1503*72+0"
    good = task.expert_step(state)
    v = task.verify(state, good, detailed=True)
    assert v.ok and v.text() == "✓✓17007=07✓57035=35✓07303=03✓37021=21✓✓0✓✓=75312✓✓"
    bad = task.verify(state, good.replace("35,03", "45,03"), detailed=True)
    assert [m for m in bad.marks if m][1:3] == ["57045=35", "07403=04"]
    assert bad.labels[2:6] == (True, False, False, True)
    # a wrong sum: its right value is the sum of what the step wrote
    wrong_sum = good.replace("00000+75312=75312", "00000+75312=75313")
    w = task.verify(state, wrong_sum, detailed=True)
    assert "=75312" in w.marks and w.labels[w.marks.index("=75312")] is False
    assert get_task("mult-restated").verify(state, wrong_sum, detailed=True).ok is False


def test_paired_verification_writes_each_compared_digit_beside_the_one_it_must_equal():
    """Paired: a copy, a sum and an answer are interleaved digit by digit with what they must
    equal (zero padding is alignment), so one differing adjacent pair is the error."""
    task, state = get_task("mult-paired"), "1503*72+0"
    good = task.expert_step(state)  # y7:02:07,35,03,21=75312;00000+75312=75312;1503*02+75312
    assert task.verify(state, good, detailed=True).text() == (
        "✓✓17007=07✓57035=35✓07303=03✓37021=21✓✓0000000000✓✓7755331122✓✓")
    w = task.verify(state, good.replace("00000+75312=75312", "00000+75312=75412"), detailed=True)
    assert "7755431122" in w.marks and w.labels[w.marks.index("7755431122")] is False
    assert task.verify("0*72+21573", "a21573", detailed=True).text() == "2211557733✓"
    assert task.verify("0*72+21573", "a2157", detailed=True).text() == "2211557703✗"


@pytest.mark.parametrize("name", ["mult-restated", "mult-recomputed", "mult-paired"])
def test_marked_verdicts_are_the_detailed_verdicts_on_expert_steps_and_on_every_corruption(name):
    restated, plain, rng = get_task(name), get_task("mult"), random.Random(7)
    checked = set()
    for difficulty in ("id-easy", "id-hard"):
        for _ in range(40):
            problem = plain.generate(difficulty, rng)
            state = plain.initial_state(problem)
            while state is not None:
                step = plain.expert_step(state)
                assert restated.verify(state, step, detailed=True).ok
                for kind in plain.corruption_kinds(step):
                    wrong = plain.corrupt_step(state, step, kind, rng)
                    if wrong is not None:
                        v = restated.verify(state, wrong, detailed=True)
                        assert not v.ok, (kind, state, wrong)
                        assert len(v.marks) in (0, len(v.labels))
                        assert all(m.replace("=", "").isdigit() or not m for m in v.marks)
                        checked.add(kind)
                state = plain.transition(state, step).next_state
    assert {"product", "copy", "sum", "align", "delta", "state", "count"} <= checked
    with pytest.raises(ValueError, match="LSD"):
        Multiplication(MsdLayout(), "x", marks="restated")
    with pytest.raises(ValueError, match="marks"):
        Multiplication(LsdLayout(), "x", marks="restate")
