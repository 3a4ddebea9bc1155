"""The reflective transition of the RMTP: what one proposal, with its verification, does.

The one place that decides, for the executor (:mod:`cot_ray.mtp.execute`), the Gymnasium
environments (:mod:`cot_ray.mtp.env`) and the verification metrics alike:

- a verification with any ✗ rejects the step (binary: its one label; detailed: any element), and
  the state stays where it was;
- otherwise the task's transition T reads the step: a malformed or cut-off step ends the run
  ("invalid"), an answer step ends it with that answer, any other step moves to the new state.

Plain MTP is the same with no verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cot_ray.tasks import NEGATIVE, Task

CUT_OFF = "the step was not closed with '}' (output cut off)"


def rejects(verification: str | None) -> bool:
    """The rejection rule: a non-empty verification that contains a ✗."""
    return bool(verification) and NEGATIVE in str(verification)


@dataclass(frozen=True)
class Move:
    """The outcome of one proposal: ``reject`` (stay), ``invalid`` (end, ``error`` says why),
    ``answer`` (end with ``answer``) or ``next`` (go to ``state``)."""

    kind: Literal["reject", "invalid", "answer", "next"]
    state: str = ""
    answer: str | None = None
    error: str = ""


def reflective_transition(task: Task, state: str, step: str, closed: bool, verification: str | None) -> Move:
    """Apply the RMTP's transition to a proposed ``step`` at ``state``; ``closed`` says whether
    the step ended with its closing mark (a step cut off by the token limit is not)."""
    if rejects(verification):
        return Move("reject")
    if not closed:
        return Move("invalid", error=CUT_OFF)
    t = task.transition(state, step)
    if not t.valid:
        return Move("invalid", error=t.error)
    if t.is_answer:
        return Move("answer", answer=t.answer or "")
    return Move("next", state=t.next_state or "")
