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
