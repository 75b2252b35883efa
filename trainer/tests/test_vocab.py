"""testing/vocab.py: the embedded tokenizer grown to a real-shape model's vocabulary for random-weight benchmarks and
fixtures (the trainer and the engine refuse a tokenizer far smaller than the vocabulary)."""
import pytest

from bloom_peft.errors import ModelError
from bloom_peft.model_loading import check_vocabulary, load_tokenizer
from bloom_peft.testing.vocab import full_size_tokenizer
from trainer_data_model import model_name


def test_grown_tokenizer_keeps_ids_and_covers_the_vocabulary(tmp_path):
    from transformers import BloomConfig

    small = load_tokenizer(model_name())
    grown = full_size_tokenizer(small, 9000, tmp_path / "tok")
    assert len(grown) == 9000 and len(small) < 9000
    text = "def add(a, b):\n    return a + b  # 加法"
    assert grown(text)["input_ids"] == small(text)["input_ids"]  # same merges: the same prompt gives the same ids
    assert grown.decode([8999]) == "<unused_8999>"
    assert (grown.eos_token_id, grown.pad_token_id) == (small.eos_token_id, small.pad_token_id)
    with pytest.raises(ModelError, match=r"has only \d+ tokens but the model's vocabulary has 9000"):
        check_vocabulary(small, BloomConfig(vocab_size=9000), model_name())
    check_vocabulary(grown, BloomConfig(vocab_size=9000), str(tmp_path / "tok"))
