"""One problem, one trajectory, shown step by step (``cot-ray solve``).

Accuracy tables say how often a model is right; they do not show reflection at work. Here every
proposal of one run is laid out next to what the expert verifier says of it, so a researcher can
see which wrong steps the model caught (rejected), which it let through, and which right steps it
threw away.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cot_ray.mtp import ExecutionConfig, MTPExecutor, Policy, StepRecord, Trajectory
from cot_ray.mtp.policy import StreamingPolicy
from cot_ray.tasks import Problem, Task, get_task, parse_labels, step_is_right
from cot_ray.tasks.mult import MAX_DIGITS
from cot_ray.tasks.sudoku import has_clash, parse_board

_MULT = re.compile(r"([0-9]+)\s*[*xX]\s*([0-9]+)")

_FINISH = {
    "answer": "an answer step was accepted",
    "budget": "the step budget ran out",
    "invalid": "an accepted step could not be read",
}


def parse_question(task_name: str, text: str) -> Problem:
    """The problem a user typed: ``X*Y`` (or ``XxY``) for mult, 81 digits for sudoku.

    Raises ``ValueError`` saying what was expected, so the CLI can answer in one line. Sudoku
    puzzles are not solved here (an arbitrary puzzle can take exponential time): the answer is
    left empty and checked against the clues and the rules, as the verifier service does.
    """
    task = get_task(task_name)
    text = text.strip()
    if task.family == "mult":
        m = _MULT.fullmatch(text)
        if m is None or max(len(str(int(m[1]))), len(str(int(m[2])))) > MAX_DIGITS:
            raise ValueError(f"a {task_name} question is X*Y or XxY with whole numbers of at most {MAX_DIGITS} "
                             f"digits, e.g. 3051*27; got {text[:40]!r}")
        x, y = int(m[1]), int(m[2])
        return Problem(task_name, "", {"x": x, "y": y}, str(x * y))
    board = parse_board(text)  # the other family: sudoku
    if board is None:
        raise ValueError(f"a sudoku question is 81 digits 0-9, row by row, 0 = blank; got {len(text)} characters")
    if has_clash(board):
        raise ValueError("the sudoku puzzle repeats a digit in a row, column or block: it has no solution")
    return Problem(task_name, "", {"puzzle": text}, "")


def solve(task: Task, policy: Policy | StreamingPolicy, problem: Problem, mode: str = "rmtp",
          temperature: float = 0.0, seed: int = 0) -> Trajectory:
    """Run ``policy`` on ``problem`` with the evaluation settings, but for the planning temperature."""
    config = ExecutionConfig(mode=mode, plan_temperature=temperature, seed=seed)
    return MTPExecutor(task, policy, config).run([problem])[0]


def expert_verdict(task: Task, state: str, step: str) -> tuple[bool, str | None]:
    """The expert's binary label of ``step`` and the kind of its first wrong element (None if none).

    Both are shown: a mult step can keep the invariant (✓) while writing a wrong intermediate
    element, and the kind says where a rejected (✗) step went wrong.
    """
    return step_is_right(task, state, step), task.diagnose(state, step)


def _question(problem: Problem) -> tuple[str, str]:
    """The question and the expected answer, written for a person (mult numbers in usual order)."""
    q = problem.question
    if "puzzle" in q:
        return str(q["puzzle"]), problem.answer or "any full grid that keeps the clues and breaks no rule"
    return f"{q['x']}*{q['y']}", problem.answer


def _labels(verification: str | None) -> str:
    if verification is None:
        return "none (not asked)"
    if verification == "":
        return "skipped"
    return verification if parse_labels(verification) is not None else f"{verification} (not labels)"


def _outcome(task: Task, s: StepRecord, expert_ok: bool) -> str:
    """What the run did with the step, and where the model's own verdict contradicts the expert's
    (the errors reflection exists to catch, or the right steps it throws away)."""
    if s.rejected:
        out = "rejected, backtrack to an earlier state" if s.backtrack else "rejected"
        return out + ("  (false negative: the expert accepts it)" if expert_ok else "")
    if not s.valid:
        return f"invalid: {s.error}"
    out = "accepted (answer)" if task.transition(s.state, s.step).is_answer else "accepted"
    return out + ("  (false positive: the expert rejects it)" if s.verification and not expert_ok else "")


def render(task: Task, trajectory: Trajectory) -> str:
    """The trajectory as terminal text: a header, one aligned block per proposal, the answer."""
    question, expected = _question(trajectory.problem)
    lines = [
        f"task      {task.name} ({trajectory.mode})",
        f"question  {question}",
        f"expected  {expected}",
        f"state     {task.initial_state(trajectory.problem)}  (as the model reads it)",
    ]
    for i, s in enumerate(trajectory.steps, 1):
        ok, kind = expert_verdict(task, s.state, s.step)
        expert = ("✓" if ok else "✗") + (f"  first wrong element: {kind}" if kind else "")
        lines += [
            "",
            f"#{i}  attempt {s.attempt + 1}",
            f"    state   {s.state}",
            f"    step    {s.step or '(empty)'}",
            f"    model   {_labels(s.verification)}",
            f"    expert  {expert}",
            f"    result  {_outcome(task, s, ok)}",
        ]
    n = len(trajectory.steps)
    verdict = "✓ correct" if trajectory.correct else "✗ wrong"
    lines += [
        "",
        f"answer    {trajectory.answer if trajectory.answer is not None else 'none'}  {verdict}",
        f"finish    {trajectory.finish}: {_FINISH.get(trajectory.finish, '')} "
        f"({n} proposal{'s' * (n != 1)}, {trajectory.n_rejections} rejected)",
    ]
    return "\n".join(lines)


def to_json(task: Task, trajectory: Trajectory) -> str:
    """The trajectory as JSON, with the expert's verdict on every step (token ids left out)."""
    steps: list[dict[str, Any]] = []
    for s in trajectory.steps:
        ok, kind = expert_verdict(task, s.state, s.step)
        steps.append({
            "state": s.state, "step": s.step, "verification": s.verification, "rejected": s.rejected,
            "backtrack": s.backtrack, "valid": s.valid, "error": s.error, "attempt": s.attempt,
            "expert": {"ok": ok, "first_wrong": kind},
        })
    return json.dumps({
        "task": task.name, "mode": trajectory.mode, "question": trajectory.problem.question,
        "expected": trajectory.problem.answer or None,
        "initial_state": task.initial_state(trajectory.problem), "steps": steps, "answer": trajectory.answer,
        "correct": trajectory.correct, "finish": trajectory.finish, "tokens": trajectory.n_tokens,
    }, ensure_ascii=False, indent=2)
