"""The expert as a Policy, with optional noise: the ground truth behind SFT data and the theory.

``ExpertPolicy`` reads the state (and, in the verification phase, the step) back out of the
prompt tokens and answers like a perfect planner and verifier. With noise it becomes the
simplified reasoner of the paper's theory (section 4): it plans a wrong step with probability
``step_error`` (so mu = 1 - step_error), rejects a correct step with probability
``false_negative`` (e-) and accepts a wrong one with probability ``false_positive`` (e+).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cot_ray.mtp.policy import Completion, SamplingSpec
from cot_ray.tasks import NEGATIVE, POSITIVE, Task
from cot_ray.tokenizer import STATE_CLOSE, STATE_OPEN, STEP_CLOSE, STEP_OPEN, VERIFY_MARK, Tokenizer


class ExpertPolicy:
    """A rule-based policy over token ids; noise-free unless error rates are given."""

    def __init__(
        self,
        task: Task,
        step_error: float = 0.0,
        false_positive: float = 0.0,
        false_negative: float = 0.0,
        detailed: bool = False,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        for name, p in (("step_error", step_error), ("false_positive", false_positive),
                        ("false_negative", false_negative)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: must be a probability in [0, 1], got {p}")
        self.task = task
        self.step_error = step_error
        self.false_positive = false_positive
        self.false_negative = false_negative
        self.detailed = detailed
        self.tok = tokenizer or Tokenizer()

    def generate(self, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec]) -> list[Completion]:
        return [self._one(prompt, spec) for prompt, spec in zip(prompts, specs)]

    def _one(self, prompt: Sequence[int], spec: SamplingSpec) -> Completion:
        rng = random.Random(spec.seed)
        text = self.tok.decode(prompt)
        state = text[text.index(STATE_OPEN) + 1 : text.index(STATE_CLOSE)]
        if text.endswith(VERIFY_MARK):
            step = text[text.index(STEP_OPEN) + 1 : text.rindex(STEP_CLOSE)]
            out = self._verification(state, step, rng) + VERIFY_MARK
        else:
            wrong = rng.random() < self.step_error
            out = (self.task.perturb_step(state, rng) if wrong else self.task.expert_step(state)) + STEP_CLOSE
        ids = self.tok.encode(out)[: spec.max_tokens]
        return Completion(ids, [0.0] * len(ids))

    def _verification(self, state: str, step: str, rng: random.Random) -> str:
        truth = self.task.verify(state, step, detailed=self.detailed)
        if truth.ok and rng.random() < self.false_negative:
            return NEGATIVE if not self.detailed else truth.text()[:-1] + NEGATIVE
        if not truth.ok and rng.random() < self.false_positive:
            return POSITIVE * len(truth.labels)
        return truth.text()
