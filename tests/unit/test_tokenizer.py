import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cot_ray.tokenizer import CHARACTERS, Tokenizer

tok = Tokenizer()


@given(st.text(alphabet="".join(CHARACTERS), max_size=300))
@settings(max_examples=300)
def test_round_trip_is_lossless(text):
    assert tok.decode(tok.encode(text)) == text


def test_vocab_is_small_and_unique():
    assert tok.vocab_size == len(set(tok.vocab)) <= 128


def test_unknown_character_is_named():
    with pytest.raises(ValueError, match="'#'"):
        tok.encode("12#3")


def test_layout_of_an_rmtp_example():
    ids, start = tok.example("12*3+0", "a36", "✓")
    assert tok.decode(ids, skip_special=False) == "<bos>[12*3+0]{a36}|✓|<eos>"
    assert tok.decode(ids[start:]) == "a36}|✓|"


def test_hugging_face_export_round_trips(tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    text = "[3051*27+0]{y7:07,35=21357;21357;3051*20+21357}|✓✗|"
    assert hf.encode(text, add_special_tokens=False) == tok.encode(text)
    assert hf.decode(tok.encode(text)) == text
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
