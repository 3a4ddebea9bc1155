"""A verifier's acceptance probability of a step, teacher-forced on a checkpoint (plain torch).

Sampling the verification shows one verdict per step; ranking steps needs the probability
behind it. After ``<bos>[state]{step}|`` the checkpoint's chance of writing ✓ at each label
position (given ✓ before it), against ✗, multiplied over the labels a verification of the step
holds: the chance it accepts the step. A restated verification's marks (the inputs each label is
checked against, copied from the state and the step) are teacher-forced before their labels.
Scoring is a forward pass, not generation, so it runs on the checkpoint directly instead of on
the rollout pool's engines.
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
    step a detailed verifier's doubt sits (:func:`cot_ray.verify.discrimination.at_wrong_element`)."""
    import torch

    from cot_ray.model import load_model

    tok = Tokenizer()
    yes, no = tok.token_to_id[POSITIVE], tok.token_to_id[NEGATIVE]
    model = load_model(checkpoint).eval()
    forced = [_accepting(tok.verify_prompt(p.state, p.step), p, tok, yes) for p in proposals]
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


def _accepting(prompt: list[int], p: Proposal, tok: Tokenizer, yes: int) -> tuple[list[int], list[int]]:
    """The accepting verification teacher-forced after ``prompt`` (each mark, then ✓; the last ✓
    is predicted, not fed), and the positions whose next-token logits predict the labels."""
    seq, at = list(prompt), []
    marks = p.marks or ("",) * p.n_labels
    for k, mark in enumerate(marks):
        seq += tok.encode(mark)
        at.append(len(seq) - 1)
        if k < len(marks) - 1:
            seq.append(yes)
    return seq, at
