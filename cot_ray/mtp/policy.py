"""The Policy protocol: the one interface between MTP execution and any generator.

A policy turns token-id prompts into completions. The vLLM engine, the plain-torch reference
engine and the (noisy) expert all implement it, so MTP/RMTP/RTBS execution is written once.

Execution drives a policy as a *stream* (:class:`StreamingPolicy`): it submits a request whenever
a problem needs its next step or verification and takes completions back as each one finishes.
An engine with continuous batching (vLLM) implements the stream itself, so a problem whose step
is done moves on at once instead of waiting for the slowest step of a round; any batch-only
policy is driven through :class:`BatchedStream`, which turns every poll into one ``generate``
call over what was submitted since the last one (step-synchronous rounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class StreamingPolicy(Protocol):
    """A policy that takes requests one at a time and returns each completion once it is done."""

    def submit(self, key: int, prompt: Sequence[int], spec: SamplingSpec) -> None:
        """Queue one request; ``key`` comes back with its completion."""

    def poll(self) -> list[tuple[int, Completion]]:
        """Block until at least one queued request is done (if any is queued); return the done ones."""


class BatchedStream:
    """A :class:`StreamingPolicy` over a batch-only :class:`Policy`: each poll is one batch."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._queue: list[tuple[int, Sequence[int], SamplingSpec]] = []

    def submit(self, key: int, prompt: Sequence[int], spec: SamplingSpec) -> None:
        self._queue.append((key, prompt, spec))

    def poll(self) -> list[tuple[int, Completion]]:
        batch, self._queue = self._queue, []
        if not batch:
            return []
        completions = self.policy.generate([p for _, p, _ in batch], [s for _, _, s in batch])
        return [(key, c) for (key, _, _), c in zip(batch, completions)]


def as_stream(policy: Policy | StreamingPolicy) -> StreamingPolicy:
    """The policy itself if it streams, else a :class:`BatchedStream` over it."""
    return policy if isinstance(policy, StreamingPolicy) else BatchedStream(policy)
