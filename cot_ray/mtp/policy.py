"""The Policy protocol: the one interface between MTP execution and any generator.

A policy turns token-id prompts into completions. The vLLM engine, the plain-torch reference
engine and the (noisy) expert all implement it, so MTP/RMTP/RTBS execution is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingSpec:
    """Per-prompt sampling settings. ``temperature == 0`` means greedy decoding."""

    temperature: float = 1.0
    max_tokens: int = 256
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # write exactly max_tokens (benchmarks)


@dataclass
class Completion:
    """What a policy wrote: its token ids (a stop token, if reached, is included) and the
    log-probability of each under the sampling distribution (empty if the policy has none)."""

    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)


class Policy(Protocol):
    """Anything that can continue a batch of prompts."""

    def generate(self, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec]) -> list[Completion]:
        """One completion per prompt, in order; ``specs[i]`` applies to ``prompts[i]``."""
