"""The paper's full Sudoku step: unit listings, fills, new board (``sudoku-listed``), and the same listings
in fixed slots followed by the board (``sudoku-slots``)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import get_task
from cot_ray.tasks.sudoku import UNITS, listing, parse_board, slot_listing

listed, plain, slots = get_task("sudoku-listed"), get_task("sudoku"), get_task("sudoku-slots")


@given(st.integers(0, 2**32), st.sampled_from(["id-easy", "id-hard"]))
@settings(max_examples=30, deadline=None)
def test_expert_trace_solves_and_every_step_lists_its_state(seed, level):
    p = listed.generate(level, random.Random(seed))
    trace = expert_trace(listed, p)
    for state, step in trace:
        assert listed.verify(state, step).ok and listed.diagnose(state, step) is None
        board, lists = parse_board(state), step.split(";")[0]
        groups = [g for part in lists.split(":") for g in part.split(",")]
        assert [set(map(int, g)) for g in groups] == [{board[i] for i in unit} - {0} for unit in UNITS]
        # the rest of the step is the plain layout's step: same fills, same board
        assert step.split(";", 1)[1] == plain.expert_step(state, p)
    t = listed.transition(*trace[-1])
    assert t.is_answer and listed.check_answer(p, t.answer)


def test_a_wrong_listing_is_diagnosed_first_but_binary_verification_follows_the_paper():
    p = listed.generate("id-easy", random.Random(1))
    state = listed.initial_state(p)
    step = listed.expert_step(state, p)
    first = step.index(",")  # drop the last digit of row 0's group
    wrong = step[:first - 1] + step[first:]
    assert listed.transition(state, wrong).valid
    assert listed.diagnose(state, wrong) == "listing"
    assert listed.verify(state, wrong).ok  # paper 3.3: the binary label judges the board only


def test_perturbed_steps_keep_the_listing_and_break_the_board():
    rng = random.Random(4)
    state = listed.initial_state(listed.generate("id-easy", rng))
    step = listed.perturb_step(state, rng)
    assert step.startswith(listing(parse_board(state)) + ";")
    assert not listed.verify(state, step).ok and listed.diagnose(state, step) == "clash"


def test_the_plain_layout_rejects_a_listed_step_and_the_other_way_round():
    p = listed.generate("id-easy", random.Random(2))
    state = listed.initial_state(p)
    assert not plain.transition(state, listed.expert_step(state, p)).valid
    assert not listed.transition(state, plain.expert_step(state, p)).valid


@given(st.integers(0, 2**32), st.sampled_from(["id-easy", "id-hard"]))
@settings(max_examples=30, deadline=None)
def test_slots_hold_each_units_numbers_at_fixed_places_and_the_board_is_the_plain_layouts(seed, level):
    p = slots.generate(level, random.Random(seed))
    trace = expert_trace(slots, p)
    for state, step in trace:
        assert slots.verify(state, step).ok and slots.diagnose(state, step) is None and len(step) == 351
        board, lists = parse_board(state), step.split(";")[0]
        groups = [g for part in lists.split(":") for g in part.split(",")]
        assert [{int(ch) for ch in g} - {0} for g in groups] == [{board[i] for i in unit} - {0} for unit in UNITS]
        assert all(ch in ("0", str(v)) for g in groups for v, ch in zip(range(1, 10), g))
        assert step.split(";")[1] == plain.expert_step(state, p).split(";")[1]
    t = slots.transition(*trace[-1])
    assert t.is_answer and slots.check_answer(p, t.answer)


def test_slots_listing_errors_and_clashes_are_diagnosed():
    rng = random.Random(5)
    p = slots.generate("id-hard", rng)
    state = slots.initial_state(p)
    good = slots.expert_step(state, p)
    listing_text = slot_listing(parse_board(state))
    k = listing_text.index("0")  # claim a number a unit does not hold: slot k % 10 holds value k % 10 + 1
    wrong = listing_text[:k] + str(k % 10 + 1) + listing_text[k + 1:] + good[len(listing_text):]
    assert slots.transition(state, wrong).valid and slots.diagnose(state, wrong) == "listing"
    clash = slots.perturb_step(state, rng)
    assert clash.startswith(listing_text + ";") and slots.diagnose(state, clash) == "clash"
    assert "9 slots" in slots.transition(state, good.replace(";", ",", 1)).error
