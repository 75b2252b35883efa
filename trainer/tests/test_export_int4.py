"""The opt-in 4-bit export (docs/export.md, "int4"): MatMulNBits weights and the tied vocabulary's
GatherBlockQuantized on the same 4-bit bytes, written whole or over the base cache, and its refusals.

One perturbed LoRA adapter on the embedded model, exported once per precision (about a second each)."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from bloom_peft import export as E
from bloom_peft import export_cache as C
from bloom_peft.config import parse_config, parse_model
from bloom_peft.errors import ConfigError
from bloom_peft.testing.parity import OrtDecoder, assert_same_onnx_model, make_adapter, torch_logits
from bloom_peft.testing.tiny_model import base_model_dir

torch.set_num_threads(1)
PROMPT = "Human: Convert to snake_case\nshow main worker\n\nAssistant: "


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    d = tmp_path_factory.mktemp("int4")
    base = base_model_dir(d / "base")
    model, tok = make_adapter(base, "lora", d / "adapter")
    return {"dir": d, "base": base, "model": model, "ids": tok(PROMPT)["input_ids"], "exports": {}}


def export(lora, quantize: str, cache: bool = True) -> Path:
    key = (quantize, cache)
    if key not in lora["exports"]:
        lora["exports"][key] = E.export_adapter(str(lora["base"]), lora["dir"] / "adapter",
                                                lora["dir"] / f"export-{quantize}-{cache}", quantize=quantize,
                                                base_cache=lora["dir"] / "cache" if cache else None)
    return lora["exports"][key]


def model_bytes(out: Path) -> int:
    m = json.loads((out / "manifest.json").read_text())
    return sum((out / f).stat().st_size for f in [m["files"]["model"], *m["files"]["model_data"]])


def test_int4_export_is_block_quantized_small_and_close(lora):
    out = export(lora, "int4", cache=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["quantization"] == "int4"
    graph = onnx.load(str(out / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    # every weight MatMul is 4-bit (4 per layer + lm_head); the embeddings are gathered from the lm_head's 4-bit bytes
    assert ops.count("MatMulNBits") == 4 * m["num_layers"] + 1 and ops.count("GatherBlockQuantized") == 1
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in {t.name for t in graph.initializer}]
    gather = next(n for n in graph.node if n.op_type == "GatherBlockQuantized")
    lm_head = next(n for n in graph.node if n.op_type == "MatMulNBits"
                   and onnx.helper.get_node_attr_value(n, "N") == m["vocab_size"])
    assert gather.input[0] == lm_head.input[1]  # one copy of the vocabulary matrix
    assert not [t.name for t in graph.initializer if m["vocab_size"] in t.dims and t.data_type == onnx.TensorProto.FLOAT
                and len(t.dims) == 2 and m["hidden_size"] in t.dims]
    assert model_bytes(out) < model_bytes(export(lora, "int8", cache=False)) < model_bytes(export(lora, "none", cache=False))
    # 4-bit rounding (docs/export.md): logits within 0.35 x max(1, max |logit|) (measured 0.20-0.23 on these
    # adapters), the next token the reference's at >= 60% of positions (measured 77-85%), never outside its top 20
    ref = torch_logits(lora["model"], lora["ids"])
    logits = OrtDecoder(out).logits(lora["ids"])
    scale = max(1.0, float(np.abs(ref).max()))
    assert float(np.abs(logits - ref).max()) <= 0.35 * scale
    ours, theirs = logits.reshape(-1, logits.shape[-1]), ref.reshape(-1, ref.shape[-1])
    assert float((ours.argmax(-1) == theirs.argmax(-1)).mean()) >= 0.6
    top20 = np.argsort(-theirs, axis=-1)[:, :20]
    assert all(int(o) in set(t) for o, t in zip(ours.argmax(-1), top20))
    assert m["verification"]["max_abs_logit_diff"] <= 0.35 * scale


def test_int4_on_the_cached_base_is_byte_identical(lora):
    """Only the changed matrices are quantized, by the same MatMulNBits quantizer: the bytes of quantizing the whole
    merged model."""
    cached, whole = export(lora, "int4"), export(lora, "int4", cache=False)
    assert "adapter.onnx.data" in json.loads((cached / "manifest.json").read_text())["files"]["model_data"]
    assert_same_onnx_model(cached, whole)
    assert OrtDecoder(cached).greedy(lora["ids"], 12) == OrtDecoder(whole).greedy(lora["ids"], 12)


def test_int4_entry_takes_a_changed_vocabulary(lora, tmp_path):
    """The tied vocabulary matrix is an ordinary MatMulNBits weight that the embedding Gather reads too: a changed one
    is requantized over the cached base (int8 entries export the whole model then) and gives the whole export's
    logits."""
    from bloom_peft.model_loading import load_base_model

    base, tok = load_base_model(parse_model(str(lora["base"])))
    base.eval()
    entry = C.ensure_base_export(base, tmp_path / "cache", fp16=False, quantize="int4")
    with torch.no_grad():
        base.transformer.word_embeddings.weight[5:9] += 0.5  # tied: lm_head changes with it
    ids = lora["ids"] + [5, 6]
    logs = []
    cached = E.export_model(base, tok, "full", tmp_path / "cached", base_model="b", quantize="int4", base_entry=entry,
                            emitter=type("E", (), {"log": staticmethod(logs.append)})())
    assert json.loads((cached / "manifest.json").read_text())["files"]["model_data"] == ["model.onnx.data",
                                                                                          "adapter.onnx.data"]
    assert not any("whole model" in line for line in logs), logs
    whole = E.export_model(base, tok, "full", tmp_path / "whole", base_model="b", quantize="int4")
    assert float(np.abs(OrtDecoder(cached).logits(ids) - OrtDecoder(whole).logits(ids)).max()) <= 1e-6


def test_untied_embeddings_and_a_hidden_size_off_the_block(tmp_path):
    """A BLOOM whose embeddings are not tied to lm_head and whose hidden size (48) is not a multiple of the 32-value
    block: the embedding matrix gets its own 4-bit GatherBlockQuantized, K is padded to whole blocks and cut back."""
    from transformers import BloomConfig, BloomForCausalLM

    from bloom_peft.model_loading import load_tokenizer

    tok = load_tokenizer(str(base_model_dir(tmp_path / "base")))
    torch.manual_seed(0)
    config = BloomConfig(vocab_size=len(tok), hidden_size=48, n_layer=1, n_head=3, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model = BloomForCausalLM(config).eval()
    assert model.lm_head.weight.data_ptr() != model.transformer.word_embeddings.weight.data_ptr()
    out = E.export_model(model, tok, "full", tmp_path / "export", base_model="untied", quantize="int4")
    graph = onnx.load(str(out / "model.onnx")).graph
    assert sum(n.op_type == "GatherBlockQuantized" for n in graph.node) == 1
    assert not [t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(tok) in t.dims
                and 48 in t.dims]  # no float [vocab, hidden] matrix left (only the blocks' scales are float)
    ids = tok(PROMPT)["input_ids"]
    ref = torch_logits(model, ids)
    assert float(np.abs(OrtDecoder(out).logits(ids) - ref).max()) <= 0.35 * max(1.0, float(np.abs(ref).max()))


def test_int4_with_fp16_is_refused_before_any_work(lora, tmp_path):
    with pytest.raises(ConfigError) as err:
        E.export_adapter(str(lora["base"]), lora["dir"] / "adapter", tmp_path / "bad", quantize="int4", fp16=True)
    assert err.value.field == "/export/fp16" and "int4" in err.value.message and err.value.hint
    assert not (tmp_path / "bad").exists()
    # in a training config it is refused when the config is read, not after the training it would end
    config = {"model": {"name_or_path": "embedded"}, "method": {"name": "lora"},
              "data": {"format": "instruction", "train_file": "train.jsonl"}, "export": {"quantize": "int4", "fp16": True}}
    with pytest.raises(ConfigError) as err:
        parse_config(config, "config.json")
    assert err.value.field == "/export/fp16" and err.value.file == "config.json"
    assert parse_config({**config, "export": {"quantize": "int4"}}).export.quantize == "int4"
    with pytest.raises(ConfigError) as err:
        E.check_options("int2", False)
    assert err.value.field == "/export/quantize" and "int4" in err.value.hint
