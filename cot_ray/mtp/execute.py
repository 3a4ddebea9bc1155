"""Batched execution of the MTP, the RMTP and RTBS over any Policy.

Every unfinished problem has one request with the policy at all times: its next step or, in
the reflective modes, the verification of the step it just proposed. When a completion comes
back the (reflective) transition is applied and the problem's next request goes in at once.
Keeping all problems in flight is what lets an engine such as vLLM run at full width even though
each problem is a chain of short, dependent generations; with a streaming engine a problem never
waits for another's step (see :mod:`cot_ray.mtp.policy`).

Budgets (decisions the paper leaves open: docs/decisions.md):
- MTP: at most ``step_budget`` (T = 32) proposals.
- RMTP/RTBS: every proposal counts (Algorithm 1). While fewer than ``reflective_budget``
  (M = 64) proposals were made the policy verifies its steps and retries after a rejection at the
  revision temperature; after that verification is skipped and up to ``step_budget`` further
  steps run non-reflectively, at the planning temperature.
- RTBS: after ``width`` (m = 4) rejected proposals at a state, the search returns to the nearest
  ancestor with attempts left; the root has no attempt limit.
- A step that T cannot read ends the run ("invalid"); a run without an answer is wrong.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cot_ray.mtp.policy import Completion, Policy, SamplingSpec, StreamingPolicy, as_stream
from cot_ray.mtp.trajectory import Finish, StepRecord, Trajectory
from cot_ray.mtp.transition import reflective_transition
from cot_ray.tasks import Problem, Task
from cot_ray.tokenizer import Tokenizer

Mode = Literal["mtp", "rmtp", "rtbs"]
MODES: tuple[Mode, ...] = get_args(Mode)
"""The execution modes: the MTP, the reflective MTP, and reflective trace-back search."""


@dataclass(frozen=True)
class ExecutionConfig:
    """How to run a policy through the (reflective) MTP. Defaults are the paper's test settings
    for multiplication (Table 3): greedy first attempt, temperature 1 for revisions."""

    mode: Mode = "mtp"
    step_budget: int = 32
    reflective_budget: int = 64
    width: int = 4
    plan_temperature: float = 0.0
    revision_temperature: float = 1.0
    verify_temperature: float = 0.0
    max_step_tokens: int = 640  # the longest expert step of an OOD-Hard product (10 equal digits) is 594
    max_verify_tokens: int = 320  # longest sampled verifications: mult-paired ID-Hard 303, mult-recomputed OOD-Hard 255
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: unknown execution mode {self.mode!r}; expected one of {', '.join(MODES)}")
        for name in ("step_budget", "width", "max_step_tokens", "max_verify_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    @property
    def reflective(self) -> bool:
        return self.mode != "mtp"

    @classmethod
    def single_step(cls, seed: int, temperature: float, **overrides: Any) -> ExecutionConfig:
        """One MTP proposal from every start state at ``temperature``: how candidate steps are
        sampled for verification labels (stage III) and for revision diagnostics."""
        return cls(mode="mtp", step_budget=1, seed=seed, plan_temperature=temperature, **overrides)


@dataclass
class Batch:
    """Problems added together; ``trajectories`` is complete once ``done``."""

    task: Task
    config: ExecutionConfig
    trajectories: list[Trajectory]
    remaining: int
    on_finish: Callable[[Batch], None] | None = None

    @property
    def done(self) -> bool:
        return self.remaining == 0


@dataclass
class _Search:
    """The mutable position of one problem's run: current state, attempts there, RTBS stack."""

    batch: Batch
    index: int
    trajectory: Trajectory
    state: str
    attempts: int = 0
    proposals: int = 0
    stack: list[tuple[str, int]] = field(default_factory=list)
    done: bool = False


@dataclass
class _Request:
    """One request with the policy: a step proposal, or (``record`` set) its verification."""

    search: _Search
    prompt: list[int]
    spec: SamplingSpec
    record: StepRecord | None = None


START_STATE = "start_state"
"""``Problem.extra`` key: begin at this state instead of S_0 (stage III proposes steps at the
states the policy's own walk visited)."""


def start_state(task: Task, problem: Problem) -> str:
    return problem.extra.get(START_STATE) or task.initial_state(problem)


def samples_from(problem: Problem, state: str, label: str, samples: int) -> list[Problem]:
    """``samples`` copies of ``problem`` that begin at ``state``: samples 0..n-1 of the query
    ``<problem's query>@<label>``, so each copy gets its own sampling seed."""
    query = f"{problem.query}@{label}"
    return [dataclasses.replace(problem, extra={**problem.extra, START_STATE: state}, query_id=query, sample_id=k)
            for k in range(samples)]


class MTPExecutor:
    """Runs problems through the MTP/RMTP/RTBS with one policy.

    ``run`` solves one list of problems. ``add`` and ``step`` are the same machinery opened up
    for a rollout worker that keeps several batches (of any task and mode) in flight on one
    engine: ``add`` puts a batch's first requests in, each ``step`` takes one poll's worth of
    completions, and a batch's ``on_finish`` is called the moment its last problem ends.
    """

    def __init__(self, task: Task, policy: Policy | StreamingPolicy, config: ExecutionConfig,
                 tokenizer: Tokenizer | None = None):
        self.task = task
        self.policy = policy
        self.config = config
        self.tok = tokenizer or Tokenizer()
        self._stream = as_stream(policy)
        self._pending: dict[int, _Request] = {}
        self._keys = itertools.count()

    def run(
        self,
        problems: Sequence[Problem],
        policy_version: int = 0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[Trajectory]:
        """Solve ``problems``; ``on_progress(n_active, n_done)`` is called after every poll.

        Every problem always has exactly one request (its next step, or the verification of the
        step it just proposed) with the policy, so the engine sees all unfinished problems at once.
        """
        batch = self.add(problems, policy_version)
        while not batch.done:
            self.step()
            if on_progress is not None:
                on_progress(batch.remaining, len(problems) - batch.remaining)
        return batch.trajectories

    @property
    def busy(self) -> bool:
        """Whether any request is with the policy."""
        return bool(self._pending)

    def add(self, problems: Sequence[Problem], policy_version: int = 0, task: Task | None = None,
            config: ExecutionConfig | None = None, on_finish: Callable[[Batch], None] | None = None) -> Batch:
        """Start ``problems`` (with this executor's task and config unless others are given)."""
        task, config = task or self.task, config or self.config
        batch = Batch(task, config, [Trajectory(p, config.mode, policy_version=policy_version) for p in problems],
                      remaining=len(problems), on_finish=on_finish)
        for i, (p, traj) in enumerate(zip(problems, batch.trajectories)):
            self._submit(self._plan_request(_Search(batch, i, traj, start_state(task, p))))
        if not problems:
            self._finish_batch(batch)
        return batch

    def step(self) -> None:
        """Take the next completions from the policy and advance their problems."""
        if not self._pending:
            return
        done = self._stream.poll()
        if not done:
            raise RuntimeError(f"the policy returned nothing while {len(self._pending)} requests were pending")
        for key, completion in done:
            request = self._pending.pop(key)
            follow_up = self._on_completion(request, completion)
            if follow_up is not None:
                self._submit(follow_up)
                continue
            batch = request.search.batch
            batch.remaining -= 1
            if batch.done:
                self._finish_batch(batch)

    def _submit(self, request: _Request) -> None:
        key = next(self._keys)
        self._pending[key] = request
        self._stream.submit(key, request.prompt, request.spec)

    @staticmethod
    def _finish_batch(batch: Batch) -> None:
        if batch.on_finish is not None:
            batch.on_finish(batch)

    def _plan_request(self, s: _Search) -> _Request:
        cfg = s.batch.config
        spec = SamplingSpec(
            temperature=cfg.revision_temperature if self._revising(s) else cfg.plan_temperature,
            max_tokens=cfg.max_step_tokens,
            stop_token_ids=(self.tok.step_close_id, self.tok.eos_id),
            seed=_seed(cfg.seed, s.trajectory.problem, s.proposals, 0),
        )
        return _Request(s, self.tok.plan_prompt(s.state), spec)

    def _on_completion(self, request: _Request, c: Completion) -> _Request | None:
        """Take one completion; return the problem's next request (None once it is finished)."""
        tok, s = self.tok, request.search
        cfg = s.batch.config
        if request.record is None:  # a proposed step
            record = self._record(s, c)
            closed = record.step_token_ids[-1:] == [tok.step_close_id]
            if cfg.reflective and s.proposals < cfg.reflective_budget and closed:
                spec = SamplingSpec(
                    temperature=cfg.verify_temperature,
                    max_tokens=cfg.max_verify_tokens,
                    stop_token_ids=(tok.verify_mark_id, tok.eos_id),
                    seed=_seed(cfg.seed, s.trajectory.problem, s.proposals, 1),
                )
                return _Request(s, request.prompt + record.step_token_ids + [tok.verify_mark_id], spec, record)
        else:  # the verification of that step
            record = request.record
            record.verify_token_ids = list(c.token_ids)
            record.verify_logprobs = list(c.logprobs)
            record.verification = tok.decode(_until(c.token_ids, tok.verify_mark_id))
        self._apply(s, record)
        return None if s.done else self._plan_request(s)

    @staticmethod
    def _revising(s: _Search) -> bool:
        """A retry after a rejection, while the policy still verifies: sample at the revision
        temperature. First attempts, and every step after the reflective budget is spent (plain
        MTP from then on), use the planning temperature."""
        cfg = s.batch.config
        return s.attempts > 0 and cfg.reflective and s.proposals < cfg.reflective_budget

    def _record(self, s: _Search, c: Completion) -> StepRecord:
        step = self.tok.decode(_until(c.token_ids, self.tok.step_close_id))
        return StepRecord(
            state=s.state, step=step, attempt=s.attempts,
            step_token_ids=list(c.token_ids), step_logprobs=list(c.logprobs),
        )

    def _apply(self, s: _Search, r: StepRecord) -> None:
        """The reflective transition: reject and stay (or trace back), or move with T."""
        cfg, task, traj = s.batch.config, s.batch.task, s.trajectory
        traj.steps.append(r)
        s.proposals += 1
        move = reflective_transition(task, s.state, r.step, r.step_token_ids[-1:] == [self.tok.step_close_id],
                                     r.verification)
        if move.kind == "reject":
            r.rejected = True
            s.attempts += 1
            if cfg.mode == "rtbs" and s.attempts >= cfg.width:
                r.backtrack = self._trace_back(s)
        elif move.kind == "invalid":
            r.valid, r.error = False, move.error
            self._finish(s, "invalid")
            return
        elif move.kind == "answer":
            traj.answer = move.answer
            traj.correct = task.check_answer(traj.problem, move.answer or "")
            self._finish(s, "answer")
            return
        else:
            s.stack.append((s.state, s.attempts + 1))
            s.state, s.attempts = move.state, 0
        limit = cfg.step_budget + (cfg.reflective_budget if cfg.reflective else 0)
        if s.proposals >= limit:
            self._finish(s, "budget")

    @staticmethod
    def _trace_back(s: _Search) -> bool:
        """Pop ancestors until one has attempts left; the root keeps trying. True if moved."""
        moved = False
        while s.attempts >= s.batch.config.width and s.stack:
            s.state, s.attempts = s.stack.pop()
            moved = True
        return moved

    @staticmethod
    def _finish(s: _Search, how: Finish) -> None:
        s.trajectory.finish = how
        s.done = True


def _until(ids: Sequence[int], stop: int) -> list[int]:
    """The ids before the first ``stop`` token (all of them if it never came)."""
    ids = list(ids)
    return ids[: ids.index(stop)] if stop in ids else ids


def _seed(base: int, problem: Problem, proposal: int, phase: int) -> int:
    """A distinct, reproducible sampling seed for each call of each sample. It depends on the
    problem's identity (query, sample), never on where the problem sits in a batch or work unit."""
    identity = zlib.crc32(f"{problem.query}#{problem.sample_id}".encode())
    return (base * 1_000_003 + identity * 4099 + proposal * 2 + phase) % (2**31)
