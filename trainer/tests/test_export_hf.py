"""export-hf: every method's result reloads elsewhere with plain transformers (merged: LoRA, IA3, BitFit, full) or
peft's AutoPeftModelForCausalLM (prompt-learning adapters plus the base's name), with the trained model's logits."""
import json
import os
import subprocess
import sys

import pytest
import torch

from bloom_peft.config import parse_method, parse_model
from bloom_peft.export_hf import export_hf_run
from bloom_peft.methods import apply_method, load_trained, save_trained
from bloom_peft.model_loading import load_base_model
from trainer_data_model import ROOT, model_name

METHODS = {
    "lora": {"name": "lora"},
    "ia3": {"name": "ia3"},
    "bitfit": {"name": "bitfit"},
    "full": {"name": "full"},
    "prompt_tuning": {"name": "prompt_tuning", "num_virtual_tokens": 4},
    "p_tuning": {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
    "prefix_tuning": {"name": "prefix_tuning", "num_virtual_tokens": 4},
}


def make_run(run_dir, method_cfg):
    """A finished run without the training: the method applied, its trainable weights moved off their init (so a
    merge that dropped them would show), the adapter saved as training saves it."""
    config = {"model": {"name_or_path": model_name()}, "method": method_cfg,
              "data": {"format": "instruction", "train_file": "unused.jsonl"}}
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    base, tok = load_base_model(parse_model(model_name()), dtype=torch.float32)
    torch.manual_seed(0)
    model = apply_method(base, parse_method(method_cfg), tok)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    save_trained(model, parse_method(method_cfg), run_dir / "adapter", tok)
    return config, tok


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -ids.shape[1]:]


@pytest.mark.parametrize("method", list(METHODS))
def test_export_hf_reloads_with_the_trained_logits(method, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, tok = make_run(tmp_path / "run", METHODS[method])
    base, _ = load_base_model(parse_model(model_name()), dtype=torch.float32)
    trained = load_trained(base if method != "full" else None, parse_method(config["method"]), tmp_path / "run" / "adapter")
    result = export_hf_run(tmp_path / "run")
    out = tmp_path / "run" / "hf"
    assert result["hf_dir"] == str(out) and not (tmp_path / "run" / "hf.partial").exists()
    merged = method in ("lora", "ia3", "bitfit", "full")
    assert result["kind"] == ("merged" if merged else "adapter")
    ids = tok("Human: reverse the words\nred green\n\nAssistant: ", return_tensors="pt")["input_ids"]
    if merged:
        assert not (out / "adapter_config.json").exists()
        reloaded = AutoModelForCausalLM.from_pretrained(str(out), use_safetensors=True).eval()
        assert type(reloaded).__name__ == "BloomForCausalLM"
    else:
        adapter_config = json.loads((out / "adapter_config.json").read_text())
        assert os.path.isdir(adapter_config["base_model_name_or_path"])  # the base, findable from anywhere
        reloaded = AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()
    assert torch.allclose(logits(reloaded, ids), logits(trained, ids), atol=1e-4)
    assert AutoTokenizer.from_pretrained(str(out))("red green")["input_ids"] == tok("red green")["input_ids"]
    info = json.loads((out / "bloom_peft_export.json").read_text())
    assert info["method"] == method and ("AutoPeftModelForCausalLM" in (out / "README.md").read_text()) == (not merged)


def test_export_hf_command(tmp_path):
    """The trainer command the host runs: events on stdout ending in done with hf_dir; a run without an adapter
    is an error event naming the folder."""
    make_run(tmp_path / "run", METHODS["lora"])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer" / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "export-hf", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=240)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert events[-1]["type"] == "done" and events[-1]["hf_dir"] == str(tmp_path / "run" / "hf")
    assert events[-1]["hf_kind"] == "merged" and (tmp_path / "run" / "hf" / "model.safetensors").is_file()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((tmp_path / "run" / "config.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "export-hf", "--run-dir", str(tmp_path / "empty")],
                          capture_output=True, text=True, env=env, timeout=240)
    err = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode != 0 and err["type"] == "error" and "adapter" in err["message"]
