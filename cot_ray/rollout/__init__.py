"""Rollout: engines behind the Policy protocol (vLLM, plain torch), Ray actors and the pool."""
