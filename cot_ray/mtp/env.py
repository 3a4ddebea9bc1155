"""Gymnasium environments for the MTP and the RMTP.

Observation: the current state's prompt tokens (``<bos>[state]{``), padded. Action: the step's
tokens (MTP) or the step's and verification's tokens, ``step}|labels|`` (RMTP), padded. Reward:
1 at the end of an episode whose answer is correct, else 0 (the paper's outcome reward; no
process rewards). A malformed action ends the episode with reward 0, it never raises.
"""

from __future__ import annotations

import random
from typing import Any

import gymnasium as gym
import numpy as np

from cot_ray.mtp.execute import ExecutionConfig
from cot_ray.mtp.transition import reflective_transition
from cot_ray.tasks import get_task
from cot_ray.tokenizer import Tokenizer


class MTPEnv(gym.Env):
    """One problem per episode; one step (plus verification in the RMTP) per action."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.task = get_task(config.get("task", "mult"))
        self.difficulty = config.get("difficulty", "id-easy")
        self.reflective = bool(config.get("reflective", False))
        budgets = ExecutionConfig()  # the executor's: T proposals, plus M more in the RMTP
        default = budgets.step_budget + (budgets.reflective_budget if self.reflective else 0)
        self.step_budget = int(config.get("step_budget", default))
        self.max_len = int(config.get("max_len", 512))
        self.tok = Tokenizer()
        self._rng = random.Random(config.get("seed", 0))
        space = gym.spaces.Box(0, self.tok.vocab_size - 1, shape=(self.max_len,), dtype=np.int64)
        self.observation_space = space
        self.action_space = space
        self.problem = None
        self.state = ""
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = random.Random(seed)
        self.problem = self.task.generate(self.difficulty, self._rng)
        self.state = self.task.initial_state(self.problem)
        self.steps = 0
        return self._observe(), {"state": self.state, "question": self.problem.question}

    def step(self, action: np.ndarray):
        text = self.tok.decode(int(a) for a in np.asarray(action).ravel())
        step_text, closed, rest = text.partition("}")
        self.steps += 1
        info: dict[str, Any] = {"step": step_text}
        verification = rest.strip("|") if self.reflective and closed else None
        move = reflective_transition(self.task, self.state, step_text, bool(closed), verification)
        if move.kind == "reject":
            info["rejected"] = True
            return self._observe(), 0.0, False, self.steps >= self.step_budget, info
        if move.kind == "invalid":
            info["error"] = move.error
            return self._observe(), 0.0, True, False, info
        if move.kind == "answer":
            correct = self.task.check_answer(self.problem, move.answer or "")
            return self._observe(), float(correct), True, False, {**info, "answer": move.answer, "correct": correct}
        self.state = move.state
        info["state"] = self.state
        return self._observe(), 0.0, False, self.steps >= self.step_budget, info

    def encode_action(self, text: str) -> np.ndarray:
        """Pad the tokens of an action text (``step}`` or ``step}|labels|``) to the action shape."""
        return self._pad(self.tok.encode(text))

    def _observe(self) -> np.ndarray:
        return self._pad(self.tok.plan_prompt(self.state))

    def _pad(self, ids: list[int]) -> np.ndarray:
        out = np.full(self.max_len, self.tok.pad_id, dtype=np.int64)
        ids = ids[: self.max_len]
        out[: len(ids)] = ids
        return out


class RMTPEnv(MTPEnv):
    """The reflective MTP: actions carry a verification; a negative one keeps the state."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__({**(config or {}), "reflective": True})


ENV_IDS = {"cot_ray/MTP-v0": MTPEnv, "cot_ray/RMTP-v0": RMTPEnv}


def register_gymnasium() -> None:
    """Register both environments with Gymnasium (``gym.make("cot_ray/MTP-v0")``)."""
    for env_id, cls in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=lambda cls=cls, **kw: cls(kw))
