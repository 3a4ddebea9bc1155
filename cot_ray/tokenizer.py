"""The small fixed vocabulary shared by both tasks, and how CoTs are laid out as tokens.

Every token is one character (plus three control tokens), so encoding is a table look-up and the
round trip is lossless by construction. The paper trains a 128-entry BPE per task; with this
task format a character vocabulary is nearly the same thing (paper App. D.3) and needs no
training. Layout of one MTP/RMTP example (a decision the paper leaves open: docs/decisions.md):

    <bos>[state]{step}|verification|<eos>

The prompt is ``<bos>[state]{``; the policy writes the step and ``}``; in the RMTP it then writes
``|``, its labels (✓/✗; none = skipped verification) and ``|``. A pretraining document is
``<bos>[S0]{R1}{R2}...{A}<eos>``: each step already contains the next state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS)
STATE_OPEN, STATE_CLOSE = "[", "]"
STEP_OPEN, STEP_CLOSE = "{", "}"
VERIFY_MARK = "|"
CHARACTERS: tuple[str, ...] = tuple("0123456789") + tuple("*+=,;:?axy") + (
    STATE_OPEN, STATE_CLOSE, STEP_OPEN, STEP_CLOSE, VERIFY_MARK, "✓", "✗",
)
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + CHARACTERS


class Tokenizer:
    """Character-level tokenizer over :data:`VOCAB`; ids are positions in the vocabulary."""

    def __init__(self) -> None:
        self.vocab = VOCAB
        self.token_to_id = {tok: i for i, tok in enumerate(VOCAB)}
        self.pad_id, self.bos_id, self.eos_id = (self.token_to_id[t] for t in SPECIAL_TOKENS)
        self.step_open_id = self.token_to_id[STEP_OPEN]
        self.step_close_id = self.token_to_id[STEP_CLOSE]
        self.verify_mark_id = self.token_to_id[VERIFY_MARK]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (characters only; control tokens are added by the layout helpers).

        Raises ``ValueError`` naming the first character outside the vocabulary.
        """
        try:
            return [self.token_to_id[ch] for ch in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the cot_ray vocabulary") from None

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of ``ids``; ids outside the vocabulary decode to nothing (a malformed output)."""
        out = []
        for i in ids:
            if 0 <= i < len(self.vocab):
                tok = self.vocab[i]
                if not (skip_special and tok in SPECIAL_TOKENS):
                    out.append(tok)
        return "".join(out)

    # Layout helpers: the only place that knows how states, steps and verifications are framed.
    def plan_prompt(self, state: str) -> list[int]:
        """``<bos>[state]{``: the policy continues with the step."""
        return [self.bos_id, *self.encode(STATE_OPEN + state + STATE_CLOSE + STEP_OPEN)]

    def verify_prompt(self, state: str, step: str) -> list[int]:
        """``<bos>[state]{step}|``: the policy continues with its verification labels."""
        return self.plan_prompt(state) + self.encode(step + STEP_CLOSE + VERIFY_MARK)

    def example(self, state: str, step: str, verification: str | None = None,
                verification_only: bool = False) -> tuple[list[int], int]:
        """A full SFT example and the index where its target starts.

        The target is the step (``step}``), followed by ``|labels|`` when ``verification`` is
        given (possibly empty), and ``<eos>``. ``verification_only`` moves the target start past
        the step: reflective SFT learns to judge proposed steps without imitating wrong ones.
        """
        prompt = self.plan_prompt(state)
        body = self.encode(step + STEP_CLOSE)
        if verification is None:
            return prompt + body + [self.eos_id], len(prompt)
        labels = self.encode(VERIFY_MARK + verification + VERIFY_MARK)
        start = len(prompt) + len(body) + 1 if verification_only else len(prompt)
        return prompt + body + labels + [self.eos_id], start

    def document(self, first_state: str, steps: Sequence[str]) -> list[int]:
        """A pretraining document ``<bos>[S0]{R1}...{A}<eos>``."""
        body = STATE_OPEN + first_state + STATE_CLOSE + "".join(STEP_OPEN + s + STEP_CLOSE for s in steps)
        return [self.bos_id, *self.encode(body), self.eos_id]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write Hugging Face tokenizer files, so ``AutoTokenizer.from_pretrained`` loads them.

        Needs the ``tokenizers`` package (installed with transformers); imported lazily so the
        core stays dependency-free.
        """
        from tokenizers import Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        os.makedirs(directory, exist_ok=True)
        hf = HFTokenizer(models.WordLevel(vocab=dict(self.token_to_id), unk_token=PAD))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        hf.decoder = decoders.Fuse()
        hf.add_special_tokens(list(SPECIAL_TOKENS))
        hf.save(os.path.join(directory, "tokenizer.json"))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "unk_token": PAD,
            "model_max_length": 1 << 16,
        }
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(directory, "special_tokens_map.json"), "w") as f:
            json.dump({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": PAD}, f, indent=2)
