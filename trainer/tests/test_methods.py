"""Every method on the embedded model: real forward/backward, gradients only where the method trains, exact counts,
save -> reload gives the same logits, checkpoint state round trips, and model-loading errors name the field."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bloom_peft.config import parse_config, parse_method, parse_model
from bloom_peft.data import collate, load_splits
from bloom_peft.errors import ConfigError, ModelError
from bloom_peft.methods import (
    apply_method,
    count_parameters,
    default_learning_rate,
    detect_method,
    load_method_state_dict,
    load_trained,
    method_state_dict,
    save_trained,
)
from bloom_peft.model_loading import load_base_model, load_model_config, load_tokenizer
from trainer_data_model import TASKS, model_dir, model_name

# every method, and every variant of its options that changes the code path
VARIANTS = {
    "full": {"name": "full"},
    "bitfit": {"name": "bitfit"},
    "prompt_tuning-random": {"name": "prompt_tuning", "num_virtual_tokens": 6},
    "prompt_tuning-text": {"name": "prompt_tuning", "num_virtual_tokens": 6, "init": "text", "init_text": "Convert the words:"},
    "p_tuning-mlp": {"name": "p_tuning", "num_virtual_tokens": 6, "encoder_type": "MLP", "encoder_hidden_size": 32},
    "p_tuning-lstm": {"name": "p_tuning", "num_virtual_tokens": 6, "encoder_type": "LSTM", "encoder_hidden_size": 32},
    "prefix_tuning": {"name": "prefix_tuning", "num_virtual_tokens": 6},
    "prefix_tuning-projection": {"name": "prefix_tuning", "num_virtual_tokens": 6, "prefix_projection": True, "encoder_hidden_size": 32},
    "lora": {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["query_key_value", "dense_4h_to_h"]},
    "ia3": {"name": "ia3"},
}


def config(method=None, **training):
    return parse_config({"model": {"name_or_path": model_name()}, "method": method or {"name": "lora"},
                         "data": {"format": "instruction", "train_file": str(TASKS / "train.jsonl"), "max_samples": 40},
                         "training": {"max_length": 48, **training}})


@pytest.fixture(scope="module")
def batch():
    tok = load_tokenizer(model_name())
    train, _ = load_splits(config(), tok)
    return collate(train[:4], tok.pad_token_id)


def fresh(method):
    torch.manual_seed(0)
    model, tok = load_base_model(config(method).model)
    return apply_method(model, parse_method(method), tok), tok


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_method_trains_saves_and_reloads(variant, batch, tmp_path):
    method = VARIANTS[variant]
    model, tok = fresh(method)
    model.train()
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    loss = model(**batch).loss
    assert torch.isfinite(loss), loss
    loss.backward()
    # a stop rewinds an abandoned step's torch generators only (checkpoint.rng_snapshot): the step draws from no other
    assert random.getstate() == python_rng
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_rng, strict=True))
    named = list(model.named_parameters())
    trainable = [n for n, p in named if p.requires_grad]
    assert trainable, "the method trains nothing"
    for n, p in named:  # gradients exactly on the trainable parameters
        assert (p.grad is not None) == p.requires_grad, n
    assert any(p.grad.abs().sum() > 0 for _, p in named if p.requires_grad)
    if method["name"] == "bitfit":
        assert all(n.endswith("bias") for n in trainable) and len(trainable) == sum(n.endswith("bias") for n, _ in named)
    if method["name"] == "full":
        assert len(trainable) == len(named)

    # one real optimizer step (LoRA B and IA3 start as identity: a reload test at init would prove little)
    torch.optim.AdamW([p for _, p in named if p.requires_grad], lr=1e-2).step()
    model.eval()
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    save_trained(model, parse_method(method), tmp_path / "adapter", tok)
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    if method["name"] == "bitfit":
        assert {"bitfit_biases.safetensors", "bitfit_config.json"} <= files and "model.safetensors" not in files
    elif method["name"] == "full":
        assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    else:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert detect_method(tmp_path / "adapter") == method["name"]

    base, _ = load_base_model(config(method).model)
    reloaded = load_trained(base, parse_method(method), tmp_path / "adapter")
    with torch.no_grad():
        after = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert before.shape == after.shape
    assert (before - after).abs().max().item() < 1e-6
    # and without the method config, detected from the folder
    base2, _ = load_base_model(config(method).model)
    with torch.no_grad():
        again = load_trained(base2, tmp_path / "adapter")(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert (before - again).abs().max().item() < 1e-6


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_counts_match_peft(variant):
    method = VARIANTS[variant]
    model, _ = fresh(method)
    trainable, total = count_parameters(model)
    if hasattr(model, "get_nb_trainable_parameters"):
        assert (trainable, total) == model.get_nb_trainable_parameters()
    else:
        params = list(model.named_parameters())
        assert total == sum(p.numel() for _, p in params)
        expected = total if method["name"] == "full" else sum(p.numel() for n, p in params if n.endswith("bias"))
        assert trainable == expected
    assert 0 < trainable <= total


def test_prefix_tuning_prefix_acts_as_real_past_tokens():
    """BLOOM (ALiBi) + peft prefix tuning in transformers 5.18: a prefix holding the KV cache of n real tokens must give
    the base model's logits for the rest of the sequence, also with right padding in the batch."""
    base, tok = load_base_model(config().model)
    base.eval()
    ids = torch.tensor([tok("Human: Convert to snake_case\nshow main worker\n\nAssistant: ")["input_ids"]])
    n = 5
    with torch.no_grad():
        ref = base(ids).logits[:, n:]
        cache = base(ids[:, :n], use_cache=True).past_key_values
    cfg = base.config
    L, H, D = cfg.n_layer, cfg.n_head, cfg.hidden_size // cfg.n_head
    kv = torch.stack([torch.stack([cache.layers[layer].keys[0], cache.layers[layer].values[0]]) for layer in range(L)])  # L,2,H,n,D
    model = apply_method(load_base_model(config().model)[0], parse_method({"name": "prefix_tuning", "num_virtual_tokens": n}), tok).eval()
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.copy_(kv.permute(3, 0, 1, 2, 4).reshape(n, L * 2 * H * D))
        rest = ids[:, n:]
        out = model(input_ids=rest, attention_mask=torch.ones_like(rest)).logits
        padded = torch.cat([rest, torch.full((1, 3), tok.pad_token_id)], 1).repeat(2, 1)
        mask = torch.cat([torch.ones_like(rest), torch.zeros(1, 3, dtype=torch.long)], 1).repeat(2, 1)
        out_padded = model(input_ids=padded, attention_mask=mask).logits[:, : rest.shape[1]]
    # float32 rounding of logits up to ~12 in size (two summation orders): ~1e-5; a wrong prefix differs by > 0.1
    assert (out - ref).abs().max().item() < 5e-5
    assert (out_padded - ref).abs().max().item() < 5e-5


def test_prompt_tuning_text_init_uses_the_texts_token_embeddings():
    method = VARIANTS["prompt_tuning-text"]
    model, tok = fresh(method)
    ids = tok(method["init_text"])["input_ids"]
    n = method["num_virtual_tokens"]
    ids = (ids * (n // len(ids) + 1))[:n]  # peft repeats a short text, cuts a long one
    wte = model.get_input_embeddings().weight
    assert torch.equal(model.prompt_encoder["default"].embedding.weight.detach(), wte[torch.tensor(ids)].detach())
    cfg = json.loads(json.dumps(model.peft_config["default"].to_dict(), default=str))
    assert cfg["prompt_tuning_init"].endswith("TEXT") and cfg["tokenizer_name_or_path"] == model_dir()


@pytest.mark.parametrize("variant", ["p_tuning-lstm", "prefix_tuning-projection", "bitfit", "full", "lora"])
def test_checkpoint_state_round_trip(variant, batch):
    """method_state_dict keeps what resuming needs (e.g. P-tuning's LSTM, which peft's adapter file replaces by its output)."""
    method = VARIANTS[variant]
    model, _ = fresh(method)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    state = {k: v.clone() for k, v in method_state_dict(model, method["name"]).items()}
    if variant == "p_tuning-lstm":
        assert any("lstm_head" in k for k in state)
    if method["name"] != "full":
        assert set(state) == {n for n, p in model.named_parameters() if p.requires_grad}
    else:
        ptrs = [t.data_ptr() for t in state.values()]
        assert len(ptrs) == len(set(ptrs))  # tied lm_head/embeddings stored once (safetensors refuses shared tensors)
    other, _ = fresh(method)
    load_method_state_dict(other, method["name"], state)
    model.eval(), other.eval()
    with torch.no_grad():
        a = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = other(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(a, b)
    with pytest.raises(ModelError):
        load_method_state_dict(other, method["name"], {"nope": torch.zeros(1)})


def test_default_learning_rates():
    for name in ("full", "bitfit", "prompt_tuning", "p_tuning", "prefix_tuning", "lora", "ia3"):
        assert 0 < default_learning_rate(name) < 1
    assert default_learning_rate("full") < default_learning_rate("lora") < default_learning_rate("prompt_tuning")


def test_bad_method_options_name_the_field():
    model, tok = load_base_model(config().model)
    with pytest.raises(ConfigError) as e:
        apply_method(model, parse_method({"name": "lora", "target_modules": ["q_proj"]}), tok)
    assert e.value.field == "/method/target_modules" and "query_key_value" in e.value.hint
    with pytest.raises(ConfigError) as e:
        # checked where the config is parsed, before any model is touched
        parse_method({"name": "ia3", "target_modules": ["query_key_value"], "feedforward_modules": ["dense_4h_to_h"]})
    assert e.value.field == "/method/feedforward_modules"


def test_model_loading(tmp_path):
    model, tok = load_base_model(config().model)
    assert tok.pad_token_id == 3 and tok.eos_token_id == 2
    assert model.config.model_type == "bloom" and next(model.parameters()).dtype == torch.float32
    cfg = load_model_config(model_name())
    assert cfg.n_layer == model.config.n_layer
    # config_only: same architecture, random weights, no weights file read
    (tmp_path / "shape").mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "shape" / f).write_bytes((Path(model_dir()) / f).read_bytes())
    rnd, _ = load_base_model(parse_model(str(tmp_path / "shape"), config_only=True))
    assert sum(p.numel() for p in rnd.parameters()) == sum(p.numel() for p in model.parameters())


def _expect_model_error(name, match):
    with pytest.raises(ModelError) as e:
        load_base_model(parse_model(name))
    assert e.value.field == "/model/name_or_path" and e.value.hint, e.value
    assert match in e.value.message, e.value.message
    return e.value


def test_model_errors_name_the_field(tmp_path, monkeypatch):
    _expect_model_error(str(tmp_path / "nowhere"), "not found")
    (tmp_path / "empty").mkdir()
    _expect_model_error(str(tmp_path / "empty"), "no config.json")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    _expect_model_error(str(tmp_path / "gpt2"), "not BLOOM")
    # pickled weights only: refused (safetensors only), with a hint to convert
    base, tok = load_base_model(config().model)
    pickled = tmp_path / "pickled"
    base.config.save_pretrained(pickled)
    tok.save_pretrained(pickled)
    torch.save(base.state_dict(), pickled / "pytorch_model.bin")
    err = _expect_model_error(str(pickled), "weights")
    assert "safetensors" in err.hint
    # a hub id while the hub is unreachable: fails fast with a hint to use a local folder
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    err = _expect_model_error("bigscience/bloom-560m", "unreachable")
    assert "local folder" in err.hint


def test_prompt_tuning_text_init_for_a_hub_model_stays_offline(monkeypatch):
    """A model loaded by hub id: peft's TEXT init would call AutoTokenizer(hub id) over the network; the tokenizer in
    hand is used instead, and the adapter config still names the hub id."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    method = VARIANTS["prompt_tuning-text"]
    model, tok = load_base_model(config(method).model)
    tok.name_or_path = model.config._name_or_path = "bigscience/bloom-560m"
    peft_model = apply_method(model, parse_method(method), tok)
    ids = tok(method["init_text"])["input_ids"]
    ids = (ids * 6)[: method["num_virtual_tokens"]]
    assert torch.equal(peft_model.prompt_encoder["default"].embedding.weight.detach(),
                       peft_model.get_input_embeddings().weight[torch.tensor(ids)].detach())
    assert peft_model.peft_config["default"].tokenizer_name_or_path == "bigscience/bloom-560m"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_response_loss_equals_the_models_loss(variant, batch):
    """The trainer computes logits from the first label position on only (train.response_loss_sum): same loss and
    same gradients as the model's own loss over all positions, for every method (prompt learning prepends tokens)."""
    from bloom_peft.train import first_label_position, label_count, response_loss_sum

    model, _ = fresh(VARIANTS[variant])
    model.eval()  # no dropout: both passes see the same network
    first = first_label_position(batch["labels"])
    assert first > 0  # the prompt is skipped: that is the point
    ref = model(**batch).loss
    ref.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    n = label_count(batch)
    loss = response_loss_sum(model, batch, first) / n
    loss.backward()
    assert abs(loss.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
    for name, g in ref_grads.items():
        p = dict(model.named_parameters())[name]
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6), name
