"""What every reasoning task provides to the Markov Thought Process.

A task is pure Python: it generates problems by difficulty, writes states and steps as text,
applies the transition T, checks answers and labels steps with the ground truth (the expert
verifier). Nothing here knows about tokens, models or Ray.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

Difficulty = Literal["id-easy", "id-hard", "ood-hard", "toy"]
DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
"""The paper's three levels (models train on the two in-distribution ones), plus ``toy``, which
is not in the paper: problems small enough for smoke runs and tests to learn in seconds."""

IN_DISTRIBUTION: tuple[Difficulty, ...] = ("id-easy", "id-hard")

TaskFamily = Literal["mult", "sudoku"]
FAMILIES: tuple[TaskFamily, ...] = get_args(TaskFamily)
"""What a task is, whatever its layout: the paper's results, its test temperatures and the
multiplication heat map are per family (``mult`` and ``mult-msd`` are both multiplication)."""

POSITIVE = "✓"
NEGATIVE = "✗"


def check_difficulty(difficulty: str) -> str:
    """Return ``difficulty`` if it is one of the paper's levels, else raise a clear error."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}")
    return difficulty


@dataclass(frozen=True)
class Problem:
    """One query with its ground truth.

    ``question`` is the JSON-able description users see (``{"x":..,"y":..}`` or
    ``{"puzzle": "<81 digits>"}``); ``answer`` is the canonical correct answer text.

    ``query_id`` and ``sample_id`` are the problem's identity as one sample of one query: they
    travel with it through the rollout pool into the experience, sampling seeds derive from them
    (so how problems are cut into work units never changes the samples) and GRPO groups are the
    samples of one query. A problem made without an id is identified by its question.
    """

    task: str
    difficulty: str
    question: dict[str, Any]
    answer: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    query_id: str = field(default="", compare=False)
    sample_id: int = field(default=0, compare=False)

    @property
    def query(self) -> str:
        """The query's id, or its question as canonical JSON when it was made without one."""
        return self.query_id or question_key(self.question)


def question_key(question: dict[str, Any]) -> str:
    """A question as canonical JSON (keys sorted): the one text form of a problem's identity, which
    held-out sets, corpora, trajectory and evaluation files all compare by."""
    return json.dumps(question, sort_keys=True)


@dataclass(frozen=True)
class Transition:
    """Result of T(state, step).

    Exactly one of three outcomes: the step was malformed (``valid`` False, ``error`` says why),
    the step was the answer (``answer`` set), or it led to ``next_state``.
    """

    valid: bool
    next_state: str | None = None
    answer: str | None = None
    error: str = ""

    @property
    def is_answer(self) -> bool:
        return self.answer is not None


@dataclass(frozen=True)
class Verification:
    """Ground-truth labels for one step: one label (binary) or one per step element (detailed)."""

    labels: tuple[bool, ...]
    marks: tuple[str, ...] = ()
    """What each label judges, written before it (Sudoku's restated cells, ``rcv``); none by default."""

    @property
    def ok(self) -> bool:
        """A step is accepted only if no label is negative (the paper's rejection rule)."""
        return all(self.labels)

    def text(self) -> str:
        marks = self.marks or ("",) * len(self.labels)
        return "".join(m + (POSITIVE if label else NEGATIVE) for m, label in zip(marks, self.labels))


def parse_labels(text: str) -> tuple[bool, ...] | None:
    """Read a verification written by a model; ``None`` if it contains anything but labels."""
    if any(ch not in (POSITIVE, NEGATIVE) for ch in text):
        return None
    return tuple(ch == POSITIVE for ch in text)


class Task(Protocol):
    """The interface the MTP core, the corpus generator and the verifier rely on."""

    name: str
    family: TaskFamily

    def generate(self, difficulty: str, rng: random.Random) -> Problem:
        """A random problem of the given difficulty, fully determined by ``rng``."""

    def initial_state(self, problem: Problem) -> str:
        """S_0: the query written as a state."""

    def transition(self, state: str, step: str) -> Transition:
        """T(state, step): read the next state (or the answer) out of the step text."""

    def expert_step(self, state: str, problem: Problem | None = None) -> str:
        """The expert's next step; ``problem`` carries ground truth the state lacks (guesses)."""

    def perturb_step(self, state: str, rng: random.Random) -> str:
        """A well-formed but wrong step from ``state``: a planning error, for noisy experts."""

    def verify(self, state: str, step: str, detailed: bool = False) -> Verification:
        """Ground-truth verification of ``step`` taken at ``state`` (binary or detailed)."""

    def check_answer(self, problem: Problem, answer: str) -> bool:
        """Outcome check ORM(Q, A): is ``answer`` a correct final answer to ``problem``?"""

    def validate_state(self, state: str) -> str | None:
        """``None`` if ``state`` is a well-formed state of this task, else a message saying why."""

    def diagnose(self, state: str, step: str) -> str | None:
        """``None`` if ``step`` is right, else the kind of its first wrong element (failure analysis)."""

    def corruption_kinds(self, step: str) -> tuple[str, ...]:
        """The element kinds :meth:`corrupt_step` can make wrong in ``step`` (a right step)."""

    def corrupt_step(self, state: str, step: str, kind: str, rng: random.Random) -> str | None:
        """The right ``step`` at ``state`` with one element of ``kind`` wrong: wrong by :meth:`verify`,
        and :meth:`diagnose` names ``kind``; None when no such corruption exists (stage III's ✗ fills)."""


def step_is_right(task: Task, state: str, step: str, detailed: bool = False) -> bool:
    """Step truth: is ``step`` right at ``state``? The expert verifier's verdict (no ✗ label; the
    binary label unless ``detailed``), which the reward's early truncation, the e+ / e- metrics
    and the solve view all judge by. (Failure analysis asks another question, the kind of the
    first wrong element: :func:`cot_ray.evaluate.step_fault`.)"""
    return task.verify(state, step, detailed=detailed).ok
