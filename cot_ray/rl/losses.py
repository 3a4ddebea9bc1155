"""Policy-optimisation losses of stage IV (paper appendix B): GRPO and PPO.

All functions take per-token tensors of shape [batch, time] with a ``mask`` that is 1 on the
generated tokens being trained; losses are token means over the mask (a decision the paper
leaves open: docs/decisions.md).
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: (r - mean_g) / std_g within each group of samples of one query.

    A group whose rewards are all equal carries no signal: its advantages are 0 (not NaN).
    """
    adv = torch.zeros_like(rewards, dtype=torch.float32)
    for g in groups.unique():
        idx = groups == g
        r = rewards[idx].float()
        std = r.std(unbiased=False)
        adv[idx] = 0.0 if std < eps else (r - r.mean()) / (std + eps)
    return adv


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate exp(d) - d - 1 with d = ref - logp: unbiased, >= 0."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO/GRPO objective min(q A, clip(q) A) (to maximise) and the ratio q."""
    ratio = torch.exp(logp - old_logp)
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages), ratio


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip: float, kl_coef: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-(surrogate - beta KL), averaged over trained tokens, and diagnostics (detached tensors on
    the loss's device: reading them is left to the caller, so nothing here forces a device sync)."""
    surrogate, ratio = clipped_surrogate(logp, old_logp, advantages, clip)
    kl = kl_k3(logp, ref_logp)
    loss = -masked_mean(surrogate - kl_coef * kl, mask)
    clipped = ((ratio - 1).abs() > clip).float()
    return loss, {"kl": masked_mean(kl, mask).detach(), "clip_frac": masked_mean(clipped, mask).detach()}


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, ...]:
    """Generalised advantage estimation over one token chain (1-D tensors of equal length).

    The value after the last token is 0 (the episode ends). Returns (advantages, returns).
    """
    adv = torch.zeros_like(values)
    running = torch.zeros((), dtype=values.dtype)
    for t in range(len(values) - 1, -1, -1):
        next_value = values[t + 1] if t + 1 < len(values) else torch.zeros((), dtype=values.dtype)
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + values
