"""Model sizes (paper Table 2) and checkpoint I/O.

The paper uses LitGPT's GPT-NeoX-style decoder. We use Llama (RoPE, RMSNorm, SwiGLU) because
both transformers and vLLM (CPU and GPU) support it natively; the SwiGLU width 8d/3 keeps the
per-layer parameter count at the paper's 12 d^2, so the sizes match Table 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from cot_ray.tokenizer import Tokenizer


@dataclass(frozen=True)
class ModelSize:
    d_model: int
    n_layers: int
    n_heads: int


MODEL_SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(64, 2, 2),  # tests and smoke runs only
    "1M": ModelSize(128, 5, 4),
    "4M": ModelSize(256, 5, 8),
    "16M": ModelSize(512, 5, 8),
}
def training_flops_per_token(size: str, n_params: int, seq: int, reference: bool = False) -> float:
    """Model FLOPs of one trained token at context ``seq``: 6N for the matrices (forward and
    backward) plus 12 L d T for attention (PaLM's accounting); ``reference`` adds a frozen
    model's forward (2N + 4 L d T), as in the RL learner's KL term."""
    shape = MODEL_SIZES[size]
    attention = 12 * shape.n_layers * shape.d_model * seq
    return 6 * n_params + attention + ((2 * n_params + attention / 3) if reference else 0)


VOCAB_SIZE = 32
"""The tokenizer's 30 entries rounded up (ids 30-31 are never produced by the tokenizer)."""


def model_config(size: str, max_positions: int = 1024) -> LlamaConfig:
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; expected one of {', '.join(MODEL_SIZES)}")
    s = MODEL_SIZES[size]
    tok = Tokenizer()
    return LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=s.d_model,
        intermediate_size=_round_up(8 * s.d_model // 3, 8),
        num_hidden_layers=s.n_layers,
        num_attention_heads=s.n_heads,
        num_key_value_heads=s.n_heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,  # vLLM's in-place reload_weights skips a tied LM head
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
        torch_dtype="float32",
    )


def build_model(size: str, seed: int = 0, max_positions: int = 1024) -> LlamaForCausalLM:
    """A freshly initialised model of the given size (deterministic for a seed)."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(model_config(size, max_positions))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(model: LlamaForCausalLM, directory: str | os.PathLike[str]) -> None:
    """An HF folder that transformers and vLLM both load: weights, config and tokenizer."""
    model.save_pretrained(directory, safe_serialization=True)
    Tokenizer().save_pretrained(directory)


def load_model(directory: str | os.PathLike[str]) -> LlamaForCausalLM:
    return LlamaForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k
