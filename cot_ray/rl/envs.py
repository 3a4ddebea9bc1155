"""Registers the MTP/RMTP Gymnasium environments in RLlib's env registry.

Kept out of :mod:`cot_ray.mtp` because it imports Ray; the core stays Ray-free.
"""

from __future__ import annotations

from ray.tune.registry import register_env

from cot_ray.mtp.env import ENV_IDS


def register_rllib_envs() -> list[str]:
    """Register ``cot_ray/MTP-v0`` and ``cot_ray/RMTP-v0``; returns the names registered."""
    for name, cls in ENV_IDS.items():
        register_env(name, lambda config, cls=cls: cls(dict(config)))
    return list(ENV_IDS)
