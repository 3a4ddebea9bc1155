"""Trajectory records: everything that happened while one problem was solved.

A record keeps every proposed step (accepted or not), so training, RL and evaluation all read
the same structure: SFT reads accepted steps, RL reads token ids and log-probs, evaluation reads
answers, rejections and verification labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from cot_ray.tasks import Problem
from cot_ray.tokenizer import Tokenizer

Finish = Literal["answer", "budget", "invalid", "truncated"]
FINISHES: tuple[Finish, ...] = get_args(Finish)
"""How a run ends: an answer step was accepted, the step budget ran out, an accepted step could
not be read by T, or RL cut it at its first wrong step (early truncation)."""


@dataclass
class StepRecord:
    """One proposal R at state S, with the policy's own verification V if it wrote one.

    ``verification`` is None when no verification was asked for (MTP, or the reflective budget
    was used up), "" when the policy skipped it (optional verification), else the labels text.
    ``valid`` is False when T could not read the step (malformed output); ``error`` says why.
    ``backtrack`` marks a rejection that exhausted the RTBS width and sent the search back.
    """

    state: str
    step: str
    verification: str | None = None
    rejected: bool = False
    valid: bool = True
    error: str = ""
    attempt: int = 0
    backtrack: bool = False
    step_token_ids: list[int] = field(default_factory=list)
    step_logprobs: list[float] = field(default_factory=list)
    verify_token_ids: list[int] = field(default_factory=list)
    verify_logprobs: list[float] = field(default_factory=list)


@dataclass
class Trajectory:
    """A problem, the steps proposed on it and how the run ended.

    ``finish`` says how the run ended (:data:`FINISHES`; "" while it runs).
    """

    problem: Problem
    mode: str
    steps: list[StepRecord] = field(default_factory=list)
    answer: str | None = None
    correct: bool = False
    finish: Finish | Literal[""] = ""
    policy_version: int = 0

    @property
    def n_tokens(self) -> int:
        return sum(len(s.step_token_ids) + len(s.verify_token_ids) for s in self.steps)

    @property
    def n_rejections(self) -> int:
        return sum(s.rejected for s in self.steps)

    @property
    def n_reflections(self) -> int:
        """Steps that carry a non-empty verification (the paper's reflection frequency counts)."""
        return sum(bool(s.verification) for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_tokens"] = self.n_tokens
        return d


def reflection_frequency(trajectories: Iterable[Trajectory]) -> float | None:
    """The paper's reflection frequency: the share of all proposed steps that carry a non-empty
    verification (None without steps). The one place it is computed."""
    steps = reflected = 0
    for t in trajectories:
        steps, reflected = steps + len(t.steps), reflected + t.n_reflections
    return reflected / steps if steps else None


@dataclass(frozen=True, kw_only=True)
class SampledStep:
    """A closed step the policy wrote at a state, with the problem it belongs to (the Sudoku
    expert needs the problem to name its step without a search)."""

    state: str
    step: str
    problem: Problem


def closed_steps(trajectories: Iterable[Trajectory]) -> list[SampledStep]:
    """Every step the policy closed with ``}`` (a step cut at the token limit is no step)."""
    close = Tokenizer().step_close_id
    return [SampledStep(state=s.state, step=s.step, problem=t.problem)
            for t in trajectories for s in t.steps if s.step_token_ids[-1:] == [close]]
