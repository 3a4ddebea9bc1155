"""The RL learner: a Ray Train worker group (DDP) that trains on experience streamed to it.

Each worker blocks on its own Ray queue for the next batch of sequences (object refs, no files),
runs ``epochs`` passes of GRPO or PPO minibatch updates, and rank 0 publishes the new weights as
an HF folder (what vLLM's ``reload_weights`` reads) with a version number on the control queue.
The reference policy for the KL term is the frozen initial policy.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Any

import torch

from cot_ray.config import RLConfig
from cot_ray.rl.experience import StepSequence
from cot_ray.rl.losses import gae, masked_mean, policy_loss
from cot_ray.rl.records import LearnerBatch, LearnerChannels, Published, Ready, UpdateStats
from cot_ray.train.batches import shift_pad
from cot_ray.train.checkpoints import save_final
from cot_ray.train.harness import Harness, unwrap
from cot_ray.train.workers import LearnerWorkerConfig

QUEUE_TIMEOUT_S = 3600.0


class ValueModel(torch.nn.Module):
    """PPO's critic: the policy's transformer body with a scalar head (paper B.1)."""

    def __init__(self, policy) -> None:
        super().__init__()
        import copy

        self.body = copy.deepcopy(policy.model)
        self.head = torch.nn.Linear(policy.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(input_ids=input_ids).last_hidden_state).squeeze(-1)


def pad(seqs: list[StepSequence], pad_id: int,
        targets: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """Inputs and per-position targets (:func:`~cot_ray.train.batches.shift_pad`: position t
    predicts ids[t+1]); token fields sit at the positions that predict them. ``targets`` (PPO)
    adds each sequence's per-token advantages and returns as ``ppo_advantage`` and ``returns``."""
    x, y = shift_pad([s.ids for s in seqs], pad_id)
    fields = ("old_logp", "adv_mask", "train_mask", "advantage") + (("ppo_advantage", "returns") if targets else ())
    out = {k: torch.zeros(x.shape) for k in fields}
    out["x"], out["y"] = torch.from_numpy(x), torch.from_numpy(y)
    for i, s in enumerate(seqs):
        lo = s.start - 1
        hi = lo + len(s.train_mask)
        out["old_logp"][i, lo:hi] = torch.tensor(s.old_logp)
        out["adv_mask"][i, lo:hi] = torch.tensor(s.adv_mask)
        out["train_mask"][i, lo:hi] = torch.tensor(s.train_mask)
        out["advantage"][i, lo:hi] = s.advantage
        if targets:
            out["ppo_advantage"][i, lo:hi], out["returns"][i, lo:hi] = targets[i]
    return out


def token_logp(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token at temperature 1 (as vLLM reports it), and the entropy."""
    logits = model(input_ids=x).logits.float()
    logp_all = logits.log_softmax(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, y.unsqueeze(-1)).squeeze(-1), entropy


def ppo_targets(value_model, seqs: list[StepSequence], pad_id: int, gamma: float, lam: float,
                chunk: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """PPO's per-token (advantages, returns) of each sequence, computed once per batch.

    The critic values every sequence before any update; then GAE runs along each whole
    trajectory: the trained tokens of its steps in order, with the outcome reward at the last
    one. Computing this per minibatch instead would cut trajectories into shuffled fragments
    (each seeing the terminal reward) and move the critic's targets between minibatches.
    """
    values = []
    device = next(value_model.parameters()).device
    with torch.no_grad():
        for k in range(0, len(seqs), chunk):
            part = seqs[k:k + chunk]
            v = value_model(pad(part, pad_id)["x"].to(device)).float().cpu()
            values += [v[i, s.start - 1:s.start - 1 + len(s.train_mask)] for i, s in enumerate(part)]
    out = [(torch.zeros_like(v), torch.zeros_like(v)) for v in values]
    chains: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        chains.setdefault(s.trajectory, []).append(i)
    for members in chains.values():
        masks = [torch.tensor(seqs[i].train_mask) > 0 for i in members]
        v = torch.cat([values[i][m] for i, m in zip(members, masks)])
        if len(v) == 0:
            continue  # filler sequences train nothing
        r = torch.zeros_like(v)
        r[-1] = seqs[members[0]].reward
        adv, ret = gae(r, v, gamma, lam)
        offset = 0
        for i, m in zip(members, masks):
            n = int(m.sum())
            out[i][0][m], out[i][1][m] = adv[offset:offset + n], ret[offset:offset + n]
            offset += n
    return out


def rl_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The learner inside one Ray Train worker: the harness around :func:`policy_step`.

    Each :class:`LearnerBatch` on a worker's inbox holds one batch of sequences tagged with
    ``base``, the policy version it updates; it makes version ``base + 1``. A worker applies
    only the batch whose base is its current version and skips any other: a restarted worker
    group (resumed from its latest checkpoint, announced with :class:`Ready` on the control
    queue) then skips what a dead group left in the queues, and the driver's resent batches are
    applied exactly once.
    """
    import ray

    from cot_ray.model import load_model
    from cot_ray.tokenizer import Tokenizer

    cfg = LearnerWorkerConfig.of(loop_config)
    rl, channels = cfg.trainer, loop_config["channels"]
    h = Harness(cfg)
    ppo = rl.algorithm == "ppo"
    value = ValueModel(h.model) if ppo else None
    if value is not None and "value" in h.state:
        value.load_state_dict(h.state["value"])
    ref = h.frozen(load_model(cfg.init))
    policy = h.model = h.prepare(h.model)
    params = list(policy.parameters())
    if value is not None:
        value = h.prepare(value)
        params += list(value.parameters())
    opt = torch.optim.AdamW(params, lr=rl.lr, betas=(0.9, 0.95), weight_decay=rl.weight_decay)
    h.resume(opt)
    version, pad_id = h.start, Tokenizer().pad_id
    inbox = channels.inboxes[h.rank]
    if h.leader:
        channels.control.put(Ready(version=version))
    idle = 0.0
    while True:
        t_wait = time.perf_counter()
        msg: LearnerBatch | None = inbox.get(timeout=QUEUE_TIMEOUT_S)
        idle += time.perf_counter() - t_wait
        if msg is None:
            break
        if msg.base != version:
            continue  # left by a dead worker group, or resent and already applied
        seqs: list[StepSequence] = ray.get(msg.ref)[h.rank]
        t0 = time.perf_counter()
        lr = h.set_lr(opt, version)  # the schedule runs over the planned updates, rl.warmup_steps first
        stats = _update(h, policy, ref, value, opt, seqs, rl, pad_id, version)
        version += 1
        if h.leader:  # publish before checkpointing: the driver keeps batches back to the previous checkpoint
            _publish(h, policy, channels, version, lr, stats, learn_s=time.perf_counter() - t0, idle_s=idle)
        h.checkpoint(version, opt, {"value": unwrap(value).state_dict()} if ppo else {})
        idle = 0.0
    h.finish()


def _publish(h: Harness, policy, channels: LearnerChannels, version: int, lr: float, stats: UpdateStats,
             learn_s: float, idle_s: float) -> None:
    """Rank 0 saves version ``version``'s weights (keeping the last two) and announces them."""
    t0 = time.perf_counter()
    weights = save_final(h.out / "weights" / f"v{version:06d}", unwrap(policy))
    for old in sorted((h.out / "weights").glob("v*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    channels.control.put(Published(version=version, path=str(weights), checkpointed=h.checkpoint_due(version),
                                   lr=lr, stats=stats, learn_s=learn_s, idle_s=idle_s,
                                   save_s=time.perf_counter() - t0))


def _update(h: Harness, policy, ref, value, opt, seqs: list[StepSequence], rl: RLConfig, pad_id: int,
            version: int) -> UpdateStats:
    """``epochs`` passes of minibatch :func:`policy_step` over this worker's sequences."""
    mb = rl.minibatch_size
    warmup = value is not None and version < rl.value_warmup_updates
    targets = ppo_targets(value, seqs, pad_id, rl.gamma, rl.lam, mb) if value is not None else None
    sums: dict[str, float] = {}
    n = 0
    for epoch in range(rl.epochs):
        order = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(version * 1000 + epoch)).tolist()
        for k in range(0, len(seqs), mb):
            idx = order[k:k + mb]
            padded = pad([seqs[i] for i in idx], pad_id, [targets[i] for i in idx] if targets else None)
            batch = dict(zip(padded, h.to_device(padded.values())))
            for name, x in policy_step(policy, ref, value, opt, batch, rl, warmup, h.autocast).items():
                sums[name] = sums.get(name, 0.0) + x
            n += 1
    return UpdateStats(**{k: v / max(n, 1) for k, v in sums.items()})


def policy_losses(policy, ref, value, batch: dict[str, torch.Tensor], rl: RLConfig,
                  autocast=contextlib.nullcontext) -> dict[str, torch.Tensor]:
    """GRPO's (or PPO's) losses and diagnostics on one minibatch, as tensors on the model's device:
    ``policy`` (clipped surrogate with the KL to ``ref``), ``value`` (PPO's critic, else 0),
    ``kl``, ``clip_frac`` and ``entropy``."""
    mask = batch["train_mask"]
    with autocast():
        logp, entropy = token_logp(policy, batch["x"], batch["y"])
        with torch.no_grad():
            ref_logp, _ = token_logp(ref, batch["x"], batch["y"])
        if value is not None:
            v_loss = masked_mean((value(batch["x"]).float() - batch["returns"]) ** 2, mask)
            adv = batch["ppo_advantage"] * batch["adv_mask"]
        else:
            adv, v_loss = batch["advantage"] * batch["adv_mask"], torch.zeros((), device=mask.device)
    p_loss, diag = policy_loss(logp, batch["old_logp"], ref_logp, adv, mask, rl.clip, rl.kl_coef)
    return {"policy": p_loss, "value": v_loss, "entropy": masked_mean(entropy, mask).detach(), **diag}


def policy_step(policy, ref, value, opt, batch: dict[str, torch.Tensor], rl: RLConfig, warmup: bool,
                autocast=contextlib.nullcontext) -> dict[str, float]:
    """One optimiser step on :func:`policy_losses` (PPO's critic warm-up trains the value alone)."""
    losses = policy_losses(policy, ref, value, batch, rl, autocast)
    loss = rl.value_coef * losses["value"] + (0.0 * losses["policy"] if warmup else losses["policy"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], rl.grad_clip)
    opt.step()
    return {"loss": float(losses["policy"].detach()), "value_loss": float(losses["value"].detach()),
            "kl": float(losses["kl"]), "clip_frac": float(losses["clip_frac"]), "entropy": float(losses["entropy"])}
