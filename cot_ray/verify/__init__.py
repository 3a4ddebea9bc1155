"""The oracle verifier, the outcome reward model and self-verification metrics.

- :mod:`verifier` - ``ExpertVerifier`` (ground-truth step labels), ``RewardModel`` (ORM and
  early truncation) and ``actor_class`` (their Ray actor wrapper).
- :mod:`metrics` - e+, e- and reflection frequency of a policy's own verifications, and its rejections
  split by what the steps really were.
- :mod:`serve` - the verifier as a Ray Serve HTTP endpoint (imports Ray, Serve and FastAPI, so
  it is not imported here).
"""

from cot_ray.verify.metrics import VerificationCounts, rejections_by_truth, verification_counts
from cot_ray.verify.verifier import ExpertVerifier, RewardModel, actor_class

__all__ = ["ExpertVerifier", "RewardModel", "VerificationCounts", "actor_class", "rejections_by_truth",
           "verification_counts"]
