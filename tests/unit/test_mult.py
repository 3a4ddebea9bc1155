import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import Problem, get_task
from cot_ray.tasks.mult import DIGIT_RANGES, parse_state

mult = get_task("mult")
operand = st.integers(min_value=1, max_value=10**10 - 1)


def _problem(x: int, y: int) -> Problem:
    return Problem("mult", "id-easy", {"x": x, "y": y}, str(x * y))


@given(operand, operand)
@settings(max_examples=300, deadline=None)
def test_expert_trace_reaches_the_product(x, y):
    p = _problem(x, y)
    trace = expert_trace(mult, p)
    state, step = trace[-1]
    t = mult.transition(state, step)
    assert t.is_answer and int(t.answer) == x * y
    assert mult.check_answer(p, t.answer)
    # the invariant x_t * y_t + r_t = x * y holds in every state
    for s, _ in trace:
        a, b, r = parse_state(s)
        assert a * b + r == x * y


@given(operand, operand)
@settings(max_examples=200, deadline=None)
def test_expert_steps_verify_positive_in_both_modes(x, y):
    for state, step in expert_trace(mult, _problem(x, y)):
        assert mult.verify(state, step).labels == (True,)
        detailed = mult.verify(state, step, detailed=True)
        assert detailed.ok and len(detailed.labels) >= 1


@given(operand, operand, st.integers(0, 2**32))
@settings(max_examples=200, deadline=None)
def test_perturbed_steps_are_well_formed_but_rejected(x, y, seed):
    state = mult.initial_state(_problem(x, y))
    step = mult.perturb_step(state, random.Random(seed))
    assert mult.transition(state, step).valid
    assert not mult.verify(state, step).ok
    assert not mult.verify(state, step, detailed=True).ok


def test_detailed_labels_point_at_the_wrong_element():
    state = "3051*27+0"
    good = mult.expert_step(state)
    assert good == "y7:07,35,03,21=21357;21357;3051*20+21357"
    bad_product = good.replace("35,", "36,")  # second digit product wrong, rest as the expert
    labels = mult.verify(state, bad_product, detailed=True).labels
    assert labels == (True, True, False, True, True, True, True, True)
    assert mult.verify(state, bad_product).ok  # binary only checks the invariant, which holds


@given(st.text(alphabet="0123456789*+=,;:?axy", max_size=40))
@settings(max_examples=300, deadline=None)
def test_transition_flags_malformed_steps_and_never_raises(text):
    t = mult.transition("12*34+0", text)
    if not t.valid:
        assert t.error
    else:
        assert t.is_answer or parse_state(t.next_state) is not None
    mult.verify("12*34+0", text, detailed=True)  # never raises


def test_generator_respects_difficulty_digit_ranges():
    rng = random.Random(0)
    for level, (lo, hi) in DIGIT_RANGES.items():
        for _ in range(100):
            q = mult.generate(level, rng).question
            assert lo <= max(len(str(q["x"])), len(str(q["y"]))) <= hi


def test_generator_is_seeded():
    a = [mult.generate("id-hard", random.Random(7)) for _ in range(3)]
    b = [mult.generate("id-hard", random.Random(7)) for _ in range(3)]
    assert a == b
