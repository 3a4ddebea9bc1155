"""A verifier's acceptance probability of a step, teacher-forced on a checkpoint (plain torch).

Sampling the verification shows one verdict per step; ranking steps needs the probability
behind it. After ``<bos>[state]{step}|`` the checkpoint's chance of writing ✓ at each label
position (given ✓ before it), against ✗, multiplied over the labels a verification of the step
holds: the chance it accepts the step. A verification with marks (what each label is checked
against, written before it: ``mult-restated``, ``mult-recomputed``) is the checkpoint's own: its
marks are decoded greedily, as at inference, with ✓ fed at every label, because a recomputed mark
holds the right value, and teacher-forcing it would hand the verifier the answer it is judged on.
Scoring runs on the checkpoint directly (one forward pass, or a short greedy decode, per batch)
instead of on the rollout pool's engines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cot_ray.tasks import NEGATIVE, POSITIVE
from cot_ray.tokenizer import Tokenizer
from cot_ray.verify.discrimination import Proposal


def acceptance(checkpoint: str, proposals: Sequence[Proposal], batch_size: int = 128) -> list[float]:
    """P(every label ✓ | state, step) for each proposal (``n_labels`` labels), in order."""
    return [math.prod(labels) for labels in label_acceptance(checkpoint, proposals, batch_size)]


def label_acceptance(checkpoint: str, proposals: Sequence[Proposal], batch_size: int = 128) -> list[list[float]]:
    """P(✓ | state, step, ✓ before it) at each label of each proposal, in order: where in a
    step a detailed verifier's doubt sits (:func:`cot_ray.verify.discrimination.at_wrong_element`).
    Proposals with marks are decoded (:func:`_decoded`): their labels are the ones the checkpoint
    writes, as many as it writes."""
    from cot_ray.model import load_model

    model = load_model(checkpoint).eval()
    marked = [i for i, p in enumerate(proposals) if p.marks]
    out = _forced(model, [p for p in proposals if not p.marks], batch_size)
    decoded = _decoded(model, [proposals[i] for i in marked], batch_size)
    for i, probs in zip(marked, decoded):
        out.insert(i, probs)
    return out


def _forced(model, proposals: Sequence[Proposal], batch_size: int) -> list[list[float]]:
    """Labels teacher-forced after each step: ✓ at every label before the last."""
    import torch

    tok = Tokenizer()
    yes, no = tok.token_to_id[POSITIVE], tok.token_to_id[NEGATIVE]
    forced = [_accepting(tok.verify_prompt(p.state, p.step), p, yes) for p in proposals]
    seqs, at = [seq for seq, _ in forced], [positions for _, positions in forced]
    order = sorted(range(len(proposals)), key=lambda i: len(seqs[i]))
    out: list[list[float]] = [[] for _ in proposals]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(seqs[i]) for i in rows)
            ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, :len(seqs[i])], mask[r, :len(seqs[i])] = torch.tensor(seqs[i]), 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[..., [yes, no]], dim=-1)
            for r, i in enumerate(rows):
                out[i] = logp[r, list(at[i]), 0].exp().tolist()
    return out


def _accepting(prompt: list[int], p: Proposal, yes: int) -> tuple[list[int], list[int]]:
    """The accepting verification teacher-forced after ``prompt`` (✓ at each label but the last,
    which is predicted, not fed), and the positions whose next-token logits predict the labels."""
    seq = list(prompt) + [yes] * (p.n_labels - 1)
    return seq, list(range(len(prompt) - 1, len(seq)))


def _decoded(model, proposals: Sequence[Proposal], batch_size: int, max_tokens: int | None = None) -> list[list[float]]:
    """Greedy verifications of ``proposals`` (KV-cached ``generate``): wherever the checkpoint's
    likeliest next token is a label, P(✓) against ✗ is read there and ✓ is fed, so later marks and
    labels are the ones an accepting verification would write; decoding stops at ``|`` or after
    ``max_tokens`` (default: the RMTP's verification budget)."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from cot_ray.mtp import ExecutionConfig

    max_tokens = max_tokens or ExecutionConfig().max_verify_tokens

    tok = Tokenizer()
    yes, no = tok.token_to_id[POSITIVE], tok.token_to_id[NEGATIVE]
    stops = (tok.verify_mark_id, tok.eos_id)

    class AcceptAtLabels(LogitsProcessor):
        def __init__(self, rows: int, prompt_width: int) -> None:
            self.probs: list[list[float]] = [[] for _ in range(rows)]
            self.done = torch.zeros(rows, dtype=torch.bool)
            self.prompt_width = prompt_width

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if input_ids.shape[1] > self.prompt_width:  # the prompt ends with |; a generated | closes a row
                self.done |= torch.isin(input_ids[:, -1], torch.tensor(stops))
            label = torch.isin(scores.argmax(-1), torch.tensor([yes, no]))
            p_yes = torch.softmax(scores[:, [yes, no]], dim=-1)[:, 0]
            for r in torch.nonzero(label & ~self.done).flatten().tolist():
                self.probs[r].append(float(p_yes[r]))
            scores[label] = -torch.inf  # feed ✓: the accepting verification
            scores[label, yes] = 0.0
            return scores

    every = [tok.verify_prompt(p.state, p.step) for p in proposals]
    order = sorted(range(len(every)), key=lambda i: len(every[i]))  # alike steps verify alike lengths
    out: list[list[float]] = [[] for _ in proposals]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            prompts = [every[i] for i in rows]
            width = max(len(x) for x in prompts)
            ids = torch.tensor([[tok.pad_id] * (width - len(x)) + x for x in prompts])
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts])
            accept = AcceptAtLabels(len(prompts), width)
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens, do_sample=False,
                           logits_processor=LogitsProcessorList([accept]), eos_token_id=list(stops),
                           pad_token_id=tok.pad_id)
            for i, probs in zip(rows, accept.probs):
                out[i] = probs
    return out
