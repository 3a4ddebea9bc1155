"""Stage IV: reinforcement learning (environments for RLlib now; GRPO/PPO learner later)."""
