"""Batched, step-synchronous execution of the MTP, the RMTP and RTBS over any Policy.

All unfinished problems advance together: each round asks the policy for one step per problem
(one batched call), then, in the reflective modes, for the verification of each new step (a
second batched call), then applies the (reflective) transition. Batching across problems is what
lets an engine such as vLLM run at full width even though each problem is a chain of short,
dependent generations.

Budgets (decisions for paper.md section 9, items 11-12):
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cot_ray.mtp.policy import Completion, Policy, SamplingSpec
from cot_ray.mtp.trajectory import StepRecord, Trajectory
from cot_ray.tasks import NEGATIVE, Problem, Task
from cot_ray.tokenizer import Tokenizer

MODES: tuple[str, ...] = ("mtp", "rmtp", "rtbs")


@dataclass(frozen=True)
class ExecutionConfig:
    """How to run a policy through the (reflective) MTP. Defaults are the paper's test settings
    for multiplication (Table 3): greedy first attempt, temperature 1 for revisions."""

    mode: str = "mtp"
    step_budget: int = 32
    reflective_budget: int = 64
    width: int = 4
    plan_temperature: float = 0.0
    revision_temperature: float = 1.0
    verify_temperature: float = 0.0
    max_step_tokens: int = 384
    max_verify_tokens: int = 96
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


@dataclass
class _Search:
    """The mutable position of one problem's run: current state, attempts there, RTBS stack."""

    index: int
    trajectory: Trajectory
    state: str
    attempts: int = 0
    proposals: int = 0
    stack: list[tuple[str, int]] = field(default_factory=list)
    done: bool = False


class MTPExecutor:
    """Runs problems through the MTP/RMTP/RTBS of one task with one policy."""

    def __init__(self, task: Task, policy: Policy, config: ExecutionConfig, tokenizer: Tokenizer | None = None):
        self.task = task
        self.policy = policy
        self.config = config
        self.tok = tokenizer or Tokenizer()

    def run(
        self,
        problems: Sequence[Problem],
        policy_version: int = 0,
        on_round: Callable[[int, int], None] | None = None,
    ) -> list[Trajectory]:
        """Solve ``problems``; ``on_round(n_active, n_done)`` is called after every round."""
        searches = [
            _Search(i, Trajectory(p, self.config.mode, policy_version=policy_version), self.task.initial_state(p))
            for i, p in enumerate(problems)
        ]
        while active := [s for s in searches if not s.done]:
            self._round(active)
            if on_round is not None:
                on_round(sum(not s.done for s in searches), sum(s.done for s in searches))
        return [s.trajectory for s in searches]

    def _round(self, active: list[_Search]) -> None:
        cfg, tok = self.config, self.tok
        prompts = [tok.plan_prompt(s.state) for s in active]
        specs = [
            SamplingSpec(
                temperature=cfg.revision_temperature if self._revising(s) else cfg.plan_temperature,
                max_tokens=cfg.max_step_tokens,
                stop_token_ids=(tok.step_close_id, tok.eos_id),
                seed=_seed(cfg.seed, s.index, s.proposals, 0),
            )
            for s in active
        ]
        plans = self.policy.generate(prompts, specs)
        records = [self._record(s, c) for s, c in zip(active, plans)]
        verify = [
            k for k, (s, r) in enumerate(zip(active, records))
            if cfg.reflective and s.proposals < cfg.reflective_budget and r.step_token_ids[-1:] == [tok.step_close_id]
        ]
        if verify:
            v_prompts = [prompts[k] + records[k].step_token_ids + [tok.verify_mark_id] for k in verify]
            v_specs = [
                SamplingSpec(
                    temperature=cfg.verify_temperature,
                    max_tokens=cfg.max_verify_tokens,
                    stop_token_ids=(tok.verify_mark_id, tok.eos_id),
                    seed=_seed(cfg.seed, active[k].index, active[k].proposals, 1),
                )
                for k in verify
            ]
            for k, c in zip(verify, self.policy.generate(v_prompts, v_specs)):
                records[k].verify_token_ids = list(c.token_ids)
                records[k].verify_logprobs = list(c.logprobs)
                records[k].verification = tok.decode(_until(c.token_ids, tok.verify_mark_id))
        for s, r in zip(active, records):
            self._apply(s, r)

    def _revising(self, s: _Search) -> bool:
        """A retry after a rejection, while the policy still verifies: sample at the revision
        temperature. First attempts, and every step after the reflective budget is spent (plain
        MTP from then on), use the planning temperature."""
        return s.attempts > 0 and self.config.reflective and s.proposals < self.config.reflective_budget

    def _record(self, s: _Search, c: Completion) -> StepRecord:
        step = self.tok.decode(_until(c.token_ids, self.tok.step_close_id))
        return StepRecord(
            state=s.state, step=step, attempt=s.attempts,
            step_token_ids=list(c.token_ids), step_logprobs=list(c.logprobs),
        )

    def _apply(self, s: _Search, r: StepRecord) -> None:
        """The reflective transition: reject and stay (or trace back), or move with T."""
        cfg, traj = self.config, s.trajectory
        traj.steps.append(r)
        s.proposals += 1
        if r.verification is not None and NEGATIVE in r.verification:
            r.rejected = True
            s.attempts += 1
            if cfg.mode == "rtbs" and s.attempts >= cfg.width:
                r.backtrack = self._trace_back(s)
        elif r.step_token_ids[-1:] != [self.tok.step_close_id]:
            r.valid, r.error = False, "the step was not closed with '}' (output cut off)"
            self._finish(s, "invalid")
            return
        else:
            t = self.task.transition(s.state, r.step)
            if not t.valid:
                r.valid, r.error = False, t.error
                self._finish(s, "invalid")
                return
            if t.is_answer:
                traj.answer = t.answer
                traj.correct = self.task.check_answer(traj.problem, t.answer or "")
                self._finish(s, "answer")
                return
            s.stack.append((s.state, s.attempts + 1))
            s.state, s.attempts = t.next_state or "", 0
        limit = cfg.step_budget + (cfg.reflective_budget if cfg.reflective else 0)
        if s.proposals >= limit:
            self._finish(s, "budget")

    def _trace_back(self, s: _Search) -> bool:
        """Pop ancestors until one has attempts left; the root keeps trying. True if moved."""
        moved = False
        while s.attempts >= self.config.width and s.stack:
            s.state, s.attempts = s.stack.pop()
            moved = True
        return moved

    @staticmethod
    def _finish(s: _Search, how: str) -> None:
        s.trajectory.finish = how
        s.done = True


def _until(ids: Sequence[int], stop: int) -> list[int]:
    """The ids before the first ``stop`` token (all of them if it never came)."""
    ids = list(ids)
    return ids[: ids.index(stop)] if stop in ids else ids


def _seed(base: int, problem: int, proposal: int, phase: int) -> int:
    """A distinct, reproducible sampling seed for each call position."""
    return (base * 1_000_003 + problem * 4099 + proposal * 2 + phase) % (2**31)
