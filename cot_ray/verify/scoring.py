"""A verifier's acceptance probability of a step, teacher-forced on a checkpoint (plain torch).

Sampling the verification shows one verdict per step; ranking steps needs the probability
behind it. After ``<bos>[state]{step}|`` the checkpoint's chance of writing ✓ at each label
position (given ✓ before it), against ✗, multiplied over the labels a verification of the step
holds: the chance it accepts the step. Scoring is a forward pass, not generation, so it runs on
the checkpoint directly instead of on the rollout pool's engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from cot_ray.tasks import NEGATIVE, POSITIVE
from cot_ray.tokenizer import Tokenizer
from cot_ray.verify.discrimination import Proposal


def acceptance(checkpoint: str, proposals: Sequence[Proposal], batch_size: int = 128) -> list[float]:
    """P(every label ✓ | state, step) for each proposal (``n_labels`` labels), in order."""
    import torch

    from cot_ray.model import load_model

    tok = Tokenizer()
    yes, no = tok.token_to_id[POSITIVE], tok.token_to_id[NEGATIVE]
    model = load_model(checkpoint).eval()
    prompts = [tok.verify_prompt(p.state, p.step) for p in proposals]
    order = sorted(range(len(proposals)), key=lambda i: len(prompts[i]) + proposals[i].n_labels)
    out = [0.0] * len(proposals)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            seqs = [prompts[i] + [yes] * (proposals[i].n_labels - 1) for i in rows]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), tok.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, s in enumerate(seqs):
                ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[..., [yes, no]], dim=-1)
            for r, i in enumerate(rows):
                first = len(prompts[i]) - 1  # the position that predicts the first label
                out[i] = float(logp[r, first:first + proposals[i].n_labels, 0].sum().exp())
    return out
