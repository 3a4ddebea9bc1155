import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.data.corpus import expert_trace
from cot_ray.tasks import Sudoku, get_task
from cot_ray.tasks.sudoku import BLANK_RANGES, PEERS, candidates, count_solutions, has_clash, parse_board

sudoku = get_task("sudoku")


@given(st.integers(0, 2**32), st.sampled_from(["id-easy", "id-hard", "ood-hard"]))
@settings(max_examples=60, deadline=None)
def test_puzzles_are_consistent_and_expert_solves_them(seed, level):
    p = sudoku.generate(level, random.Random(seed))
    puzzle, solution = parse_board(p.question["puzzle"]), parse_board(p.answer)
    lo, hi = BLANK_RANGES[level]
    assert lo <= puzzle.count(0) <= hi
    assert all(c in (0, s) for c, s in zip(puzzle, solution))
    assert not has_clash(solution) and 0 not in solution
    trace = expert_trace(sudoku, p)
    state, step = trace[-1]
    t = sudoku.transition(state, step)
    assert t.is_answer and sudoku.check_answer(p, t.answer)
    for s, r in trace:
        assert sudoku.verify(s, r).ok and sudoku.verify(s, r, detailed=True).ok


def test_unique_mode_gives_unique_puzzles():
    gen = Sudoku(unique=True)
    for seed in range(3):
        p = gen.generate("id-hard", random.Random(seed))
        assert count_solutions(parse_board(p.question["puzzle"])) == 1


@given(st.integers(0, 2**32))
@settings(max_examples=50, deadline=None)
def test_perturbed_step_is_rejected_at_the_right_cell(seed):
    rng = random.Random(seed)
    p = sudoku.generate("id-easy", rng)
    state = sudoku.initial_state(p)
    step = sudoku.perturb_step(state, rng)
    assert sudoku.transition(state, step).valid
    assert not sudoku.verify(state, step).ok
    detailed = sudoku.verify(state, step, detailed=True)
    assert detailed.labels == (False,)  # one changed cell, one label: the clash


def test_changing_a_clue_is_wrong_even_without_a_clash():
    state = sudoku.initial_state(sudoku.generate("id-easy", random.Random(3)))
    board = parse_board(state)
    cell = next(i for i, v in enumerate(board) if v)
    changed = list(board)
    changed[cell] = 0  # erasing a clue never clashes, but it alters a given number
    step = "001;" + "".join(map(str, changed))
    labels = sudoku.verify(state, step, detailed=True).labels
    assert labels == (False,)  # the one changed cell, and the only label


def test_detailed_labels_sit_on_the_changed_cells_only():
    """A right step: one ✓ per filled cell; a step with one clashing fill among right ones: ✗ on that
    cell (and on the peer fill it repeats, if the step wrote that too), ✓ on the others; restated
    labels follow the cell they judge."""
    from cot_ray.tasks import get_task

    board_task, restated = get_task("sudoku-board"), get_task("sudoku-board-restated")
    p = board_task.generate("id-easy", random.Random(5))
    state = board_task.initial_state(p)
    step = board_task.expert_step(state, p)
    filled = [i for i in range(81) if state[i] != step[i]]
    assert len(filled) > 1
    assert board_task.verify(state, step, detailed=True).labels == (True,) * len(filled)
    wrong = list(step)
    cell = filled[0]
    peer_value = next(step[j] for j in sorted(PEERS[cell]) if step[j] not in ("0", step[cell]))
    wrong[cell] = peer_value
    wrong = "".join(wrong)
    labels = board_task.verify(state, wrong, detailed=True).labels
    assert len(labels) == len(filled) and labels[0] is False and sum(labels) >= len(filled) - 2
    text = restated.verify(state, wrong, detailed=True).text()
    assert text.startswith(f"{cell // 9}{cell % 9}{peer_value}✗") and text.count("✓") + text.count("✗") == len(filled)
    assert restated.verify(state, step, detailed=True).text() == "".join(
        f"{i // 9}{i % 9}{step[i]}✓" for i in filled)


@pytest.mark.parametrize("answer", ["1" * 81, "12", "x" * 81])
def test_wrong_answers_are_rejected(answer):
    p = sudoku.generate("id-easy", random.Random(0))
    assert not sudoku.check_answer(p, answer)


@given(st.text(alphabet="0123456789,;?", max_size=100))
@settings(max_examples=200, deadline=None)
def test_malformed_steps_are_flagged_never_raise(text):
    state = "0" * 81
    t = sudoku.transition(state, text)
    if not t.valid:
        assert t.error
        assert sudoku.verify(state, text).labels == (False,)


@given(st.lists(st.integers(0, 9), min_size=81, max_size=81))
@settings(max_examples=300)
def test_has_clash_is_the_peer_definition(board):
    """The packed unit counters say the same as 'a non-zero value repeated among its 20 peers'."""
    assert has_clash(board) == any(v != 0 and any(board[j] == v for j in PEERS[i]) for i, v in enumerate(board))


@given(st.lists(st.integers(0, 9), min_size=81, max_size=81), st.lists(st.integers(0, 9), min_size=81, max_size=81))
@settings(max_examples=300)
def test_verify_is_the_rule_definition(before, after):
    """Binary: every cell holds no repeat among its peers and keeps the state's number. Detailed:
    the same rule on each cell the step changed; one label if none changed; a trailing ✗ when the
    board breaks the rule only where the step did not write."""
    state, step = "".join(map(str, before)), "001;" + "".join(map(str, after))
    rule = [not (a and any(after[j] == a for j in PEERS[i])) and b in (0, a)
            for i, (b, a) in enumerate(zip(before, after))]
    assert sudoku.verify(state, step).labels == (all(rule),)
    changed = [rule[i] for i in range(81) if before[i] != after[i]]
    expected = changed + [False] if changed and all(changed) and not all(rule) else changed or [all(rule)]
    assert sudoku.verify(state, step, detailed=True).labels == tuple(expected)


def test_a_wrong_guess_is_rule_consistent_but_a_dead_end():
    p = sudoku.generate("id-hard", random.Random(3))
    puzzle, solution = parse_board(p.question["puzzle"]), parse_board(p.answer)
    state = p.question["puzzle"]
    assert not sudoku.dead_end(state, sudoku.expert_step(state, p))
    # a candidate of some blank that is not the solution's value, and leaves no solution
    wrong = next((cell, v) for cell in range(81) if puzzle[cell] == 0
                 for v in sorted(candidates(puzzle, cell) - {solution[cell]})
                 if count_solutions([*puzzle[:cell], v, *puzzle[cell + 1:]], 1) == 0)
    board = list(puzzle)
    board[wrong[0]] = wrong[1]
    step = f"?{wrong[0] // 9}{wrong[0] % 9}{wrong[1]};" + "".join(map(str, board))
    assert sudoku.verify(state, step).ok and sudoku.diagnose(state, step) is None  # the rule check passes it
    assert sudoku.dead_end(state, step)
    clash = sudoku.perturb_step(state, random.Random(0))
    assert sudoku.diagnose(state, clash) == "clash" and not sudoku.dead_end(state, clash)
