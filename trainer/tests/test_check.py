"""`check`: the environment report, also when torch is missing or broken."""
import json
import os
import subprocess
import sys
from importlib import metadata

from bloom_peft import check
from trainer_data_model import ROOT

SRC = str(ROOT / "trainer" / "src")


def run_check(extra_path=None):
    path = os.pathsep.join([p for p in (extra_path, SRC) if p])
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "check"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_report_here():
    r = check.report()
    for key in ("python", "platform", "torch", "transformers", "peft", "accelerate", "onnx", "onnxruntime", "cuda", "mps", "problems"):
        assert key in r
    assert r["torch"] == metadata.version("torch") and r["peft"] == metadata.version("peft")
    assert r["python"] == ".".join(map(str, sys.version_info[:3]))
    import torch
    assert r["cuda"]["available"] == torch.cuda.is_available()
    assert len(r["cuda"]["devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    for d in r["cuda"]["devices"]:
        assert d["name"] and d["memory_bytes"] > 0
    for p in r["problems"]:
        assert set(p) >= {"code", "level", "message", "hint"} and p["level"] in ("error", "warning")
    assert r["ok"] and not [p for p in r["problems"] if p["level"] == "error"]
    if not torch.cuda.is_available():
        assert r["device"] in ("cpu", "mps") and any(p["code"] == "no_gpu" for p in r["problems"]) == (r["device"] == "cpu")


def test_version_mismatch_is_reported(tmp_path, monkeypatch):
    req = tmp_path / "requirements.txt"
    req.write_text("# pins\ntransformers==4.0.0\ntorch==" + metadata.version("torch").split("+")[0] + "\nnot-installed-pkg==1.0\n")
    monkeypatch.setattr(check, "REQUIREMENTS", req)
    problems = check.report()["problems"]
    mism = [p for p in problems if p["code"] == "version_mismatch"]
    assert len(mism) == 1 and "transformers" in mism[0]["message"] and "4.0.0" in mism[0]["message"]


def test_cli_report_without_a_working_torch(tmp_path):
    """An `import torch` that fails (a broken CUDA build, say) still yields a report that says so."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise OSError('libcudart.so.12: cannot open shared object file')\n")
    r = run_check(str(fake))
    broken = [p for p in r["problems"] if p["code"] == "torch_broken"]
    assert broken and "libcudart" in broken[0]["message"] and broken[0]["level"] == "error" and broken[0]["hint"]
    assert r["ok"] is False and r["device"] is None and r["cuda"]["available"] is False
    assert r["transformers"] == metadata.version("transformers")


# ---------------------------------------------------------------------------------------------------- check --config

def write_config(tmp_path, **sections) -> str:
    data = tmp_path / "train.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n', encoding="utf-8")
    config = {"version": 1, "model": {"name_or_path": "embedded"}, "method": {"name": "lora"},
              "data": {"format": "instruction", "train_file": "train.jsonl"}, **sections}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def config_problems(path: str, cuda_devices: int = 0, mps: bool = False) -> dict[str, dict]:
    found = check.config_problems(path, cuda_devices, mps)
    assert all(p["file"] == path and p["hint"] and p["level"] in ("error", "warning") for p in found), found
    return {p["code"]: p for p in found}


def test_check_config_warns_of_a_diverging_learning_rate_as_the_preview_does(tmp_path):
    path = write_config(tmp_path, method={"name": "full"}, training={"learning_rate": 10})
    found = config_problems(path)
    assert list(found) == ["learning_rate"]
    assert found["learning_rate"]["level"] == "warning" and found["learning_rate"]["field"] == "/training/learning_rate"
    assert "lr 10 with full fine-tuning will likely diverge" in found["learning_rate"]["message"]
    assert config_problems(write_config(tmp_path, method={"name": "full"})) == {}  # the method's default is fine


def test_check_config_finds_missing_files_and_what_this_machine_lacks(tmp_path):
    path = write_config(tmp_path, model={"name_or_path": "./no-such-model"},
                        data={"format": "instruction", "train_file": "train.jsonl", "eval_file": "eval.jsonl"},
                        training={"device": "cuda", "num_gpus": 2})
    found = config_problems(path)
    assert found["data_missing"]["field"] == "/data/eval_file" and "eval.jsonl" in found["data_missing"]["message"]
    assert found["model_missing"]["field"] == "/model/name_or_path" and "no-such-model" in found["model_missing"]["message"]
    assert found["device_unavailable"]["message"] == "training.device is 'cuda' but no CUDA device is available"
    assert all(found[c]["level"] == "error" for c in ("data_missing", "model_missing", "device_unavailable"))
    # relative data paths resolve against the config's folder (train.jsonl is there), wherever check runs
    assert "train_file" not in found["data_missing"]["message"]
    gpus = config_problems(write_config(tmp_path, training={"num_gpus": 4}), cuda_devices=2)["num_gpus"]
    assert gpus["level"] == "error" and "has 2 CUDA device(s)" in gpus["message"]
    fp16 = config_problems(write_config(tmp_path, training={"precision": "fp16"}))["precision"]
    assert fp16["level"] == "warning" and fp16["field"] == "/training/precision"
    assert "precision" not in config_problems(write_config(tmp_path, training={"precision": "fp16"}), cuda_devices=1)


def test_check_config_names_the_invalid_field(tmp_path):
    path = write_config(tmp_path, method={"name": "lora", "r": -1})
    [problem] = check.config_problems(path, 0, False)
    assert problem["code"] == "config_invalid" and problem["level"] == "error" and problem["field"] == "/method/r"
    missing = check.config_problems(str(tmp_path / "nope.json"), 0, False)
    assert missing[0]["code"] == "config_invalid" and "config file not found" in missing[0]["message"]


def test_cli_check_with_a_config(tmp_path):
    """The one-shot command: the config's problems join the environment's; `ok` is false on a config error; the
    answer still matches schemas/check-report.schema.json."""
    import jsonschema

    path = write_config(tmp_path, method={"name": "full"}, training={"learning_rate": 10, "device": "cuda"})
    proc = subprocess.run([sys.executable, "-m", "bloom_peft", "check", "--config", path], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    schema = json.loads((ROOT / "schemas" / "check-report.schema.json").read_text())
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(r)), r
    codes = {p["code"] for p in r["problems"]}
    assert {"learning_rate"} <= codes and r["config"] == path
    import torch
    assert r["ok"] is torch.cuda.is_available() and ("device_unavailable" in codes) is not torch.cuda.is_available()
