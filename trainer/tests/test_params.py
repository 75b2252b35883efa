"""`params` on real BLOOM shapes (bloom-560m's config, no weights) for every method, on the meta device; the CLI
answers one JSON line, errors included; `preview` shows rows exactly as the model sees them."""
import json
import os
import subprocess
import sys
import time
from argparse import Namespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import BloomConfig, BloomForCausalLM

from bloom_peft import params, preview
from bloom_peft.model_loading import load_tokenizer
from trainer_data_model import ROOT, TASKS, model_name

BLOOM_560M = dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16)
TOTAL_560M = 559_214_592  # bigscience/bloom-560m's parameter count
METHODS = {
    "full": ({"name": "full"}, TOTAL_560M),
    "bitfit": ({"name": "bitfit"}, 24 * (3072 + 1024 + 4096 + 1024 + 1024 + 1024) + 1024 + 1024),
    "prompt_tuning": ({"name": "prompt_tuning", "num_virtual_tokens": 20}, 20 * 1024),
    "prompt_tuning-text": ({"name": "prompt_tuning", "init": "text", "init_text": "Answer the question:"}, 20 * 1024),
    "p_tuning-mlp": ({"name": "p_tuning", "encoder_hidden_size": 128}, 20 * 1024 + (1024 * 128 + 128) + (128 * 128 + 128) + (128 * 1024 + 1024)),
    "p_tuning-lstm": ({"name": "p_tuning", "encoder_type": "LSTM", "encoder_hidden_size": 128}, None),
    "prefix_tuning": ({"name": "prefix_tuning", "num_virtual_tokens": 20}, 20 * 24 * 2 * 1024),
    "prefix_tuning-projection": ({"name": "prefix_tuning", "prefix_projection": True, "encoder_hidden_size": 512},
                                 20 * 1024 + (1024 * 512 + 512) + (512 * 24 * 2 * 1024 + 24 * 2 * 1024)),
    "lora": ({"name": "lora", "r": 8, "target_modules": ["query_key_value"]}, 24 * 8 * (1024 + 3072)),
    "ia3": ({"name": "ia3"}, 24 * (3072 + 4096)),
}


@pytest.fixture(scope="module")
def bloom_560m_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bloom-560m-config")
    BloomConfig(**BLOOM_560M).save_pretrained(d)  # config.json only: like a hub id whose weights we never fetch
    assert [p.name for p in d.iterdir()] == ["config.json"]
    return d


def ask(capsys, fn, **args):
    code = fn.run(Namespace(config=None, json=json.dumps(args.pop("config")), **args))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines  # one JSON line on stdout, nothing else
    return code, json.loads(lines[0])


@pytest.mark.parametrize("variant", list(METHODS))
def test_params_bloom_560m_every_method(variant, bloom_560m_dir, capsys):
    method, expected = METHODS[variant]
    start = time.perf_counter()
    code, out = ask(capsys, params, config={"model": {"name_or_path": str(bloom_560m_dir)}, "method": method})
    elapsed = time.perf_counter() - start
    assert code == 0, out
    assert elapsed < 5, f"{variant}: {elapsed:.1f}s"  # meta device: no 2 GB of weights allocated
    assert out["method"] == method["name"] and out["model"] == str(bloom_560m_dir)
    if expected is not None:
        assert out["trainable"] == expected
    adds_params = method["name"] not in ("full", "bitfit")
    assert out["total"] == TOTAL_560M + (out["trainable"] if adds_params else 0)
    assert out["percent"] == pytest.approx(100 * out["trainable"] / out["total"], abs=1e-5)


def test_lora_count_matches_peft_on_meta(bloom_560m_dir, capsys):
    with torch.device("meta"):
        model = BloomForCausalLM(BloomConfig(**BLOOM_560M))
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, target_modules=["query_key_value"]))
    expected = peft_model.get_nb_trainable_parameters()
    _, out = ask(capsys, params, config={"model": {"name_or_path": str(bloom_560m_dir)}, "method": {"name": "lora", "r": 8}})
    assert (out["trainable"], out["total"]) == expected
    assert out["trainable"] == 24 * 8 * (1024 + 3072) == 786_432


def test_params_embedded_and_errors(capsys, tmp_path, monkeypatch):
    code, out = ask(capsys, params, config={"model": {"name_or_path": model_name()}, "method": {"name": "lora"}})
    assert code == 0 and 0 < out["trainable"] < out["total"]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the hub is unreachable
    start = time.perf_counter()
    code, out = ask(capsys, params, config={"model": {"name_or_path": "bigscience/bloom-560m"}, "method": {"name": "lora"}})
    assert time.perf_counter() - start < 10  # no 25 s of download retries
    assert code == 2 and out["error"]["field"] == "/model/name_or_path" and "local folder" in out["error"]["hint"]
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    code, out = ask(capsys, params, config={"model": {"name_or_path": str(tmp_path / "gpt2")}, "method": {"name": "lora"}})
    assert code == 2 and "not BLOOM" in out["error"]["message"]
    code, out = ask(capsys, params, config={"model": {"name_or_path": model_name()}, "method": {"name": "lora", "r": 0}})
    assert code == 2 and out["error"]["field"] == "/method/r"
    code, out = ask(capsys, params, config={"model": {"name_or_path": model_name()}, "method": {"name": "lora", "target_modules": ["q_proj"]}})
    assert code == 2 and out["error"]["field"] == "/method/target_modules"


def test_an_import_error_is_the_environment_not_a_bug(capsys):
    def missing():
        raise ModuleNotFoundError("No module named 'jsonschema'")
    code = params.print_result(missing)
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["error"]["code"] == "environment" and "jsonschema" in out["error"]["message"]
    assert "Set Up Training Environment" in out["error"]["hint"] and "bug" not in out["error"]["hint"]


def test_preview_shows_rows_as_the_model_sees_them(capsys):
    config = {"model": {"name_or_path": model_name()}, "method": {"name": "lora"},
              "data": {"format": "instruction", "train_file": str(TASKS / "train.jsonl")}, "training": {"max_length": 40}}
    code, out = ask(capsys, preview, config=config, rows=3)
    assert code == 0 and len(out["rows"]) == 3 and (out["train_rows"], out["eval_rows"]) == (360, 40)
    tok = load_tokenizer(model_name())
    first = json.loads((TASKS / "train.jsonl").read_text().splitlines()[0])
    row = out["rows"][0]
    assert row["prompt"] == f"Human: {first['instruction']}\n{first['input']}\n\nAssistant: "
    assert row["response"] == first["output"]
    ids = tok(row["prompt"])["input_ids"] + tok(row["response"])["input_ids"] + [tok.eos_token_id]
    assert row["tokens"] == min(len(ids), 40) and row["prompt_tokens"] == len(tok(row["prompt"])["input_ids"])
    assert row["truncated"] == (len(ids) > 40)
    assert row["text"] == tok.decode(ids[:40]) and (row["truncated"] or row["text"].endswith(tok.eos_token))
    code, out = ask(capsys, preview, config={**config, "data": {"format": "instruction", "train_file": "/nope.jsonl"}}, rows=3)
    assert code == 2 and out["error"]["field"] == "/data/train_file"


def test_cli_params_subprocess(bloom_560m_dir, tmp_path):
    """The real command line, as the dashboard runs it: JSON on stdout, library chatter on stderr."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model": {"name_or_path": str(bloom_560m_dir)}, "method": {"name": "lora"}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer" / "src")}
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "params", "--config", str(cfg)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"trainable": 786432, "total": 560001024, "percent": round(100 * 786432 / 560001024, 6),
                                       "method": "lora", "model": str(bloom_560m_dir)}
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "params", "--config", str(tmp_path / "missing.json")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["code"] == "invalid_config"
