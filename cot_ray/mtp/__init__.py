"""Markov Thought Process execution (pure Python: no Ray, torch or vLLM).

- :mod:`policy` - the Policy protocol every engine implements.
- :mod:`transition` - the RMTP's reflective transition and rejection rule (one home).
- :mod:`execute` - batched MTP / RMTP / RTBS execution.
- :mod:`trajectory` - what a run records.
- :mod:`expert` - the (noisy) expert policy.
- :mod:`theory` - the paper's closed-form accuracies.
- :mod:`env` - Gymnasium environments for the MTP and the RMTP.
"""

from cot_ray.mtp.execute import MODES, ExecutionConfig, Mode, MTPExecutor
from cot_ray.mtp.expert import ExpertPolicy
from cot_ray.mtp.policy import Completion, Policy, SamplingSpec
from cot_ray.mtp.trajectory import FINISHES, Finish, StepRecord, Trajectory

__all__ = [
    "FINISHES", "MODES", "Completion", "ExecutionConfig", "ExpertPolicy", "Finish", "MTPExecutor", "Mode",
    "Policy", "SamplingSpec", "StepRecord", "Trajectory",
]
