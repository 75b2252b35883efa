"""scripts/bench/gpu_bench.py off the GPU: without CUDA every check says "no CUDA device: skipped" and the script
exits 0; with CUDA, how each check judges the trainer's events (synthetic ones here: no GPU on the test machine)."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from trainer_data_model import ROOT

SCRIPT = ROOT / "scripts" / "bench" / "gpu_bench.py"
spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
gpu_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_bench)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the checks would run")
def test_without_cuda_every_check_is_skipped_and_the_script_exits_0():
    p = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "trainer" / "src")})
    assert p.returncode == 0, p.stderr
    for name in gpu_bench.CHECKS:
        assert any(line.split() and line.strip().startswith(name) and line.endswith("no CUDA device: skipped")
                   for line in p.stdout.splitlines()), p.stdout
    assert "tokens/s table: no CUDA device: skipped" in p.stdout


def started(**fields):
    return {"type": "started", "device": "cuda:0", "device_name": "NVIDIA H200", "precision": "bf16", "world_size": 1,
            **fields}


DONE = {"type": "done", "status": "completed"}


def progress(loss):
    return {"type": "progress", "loss": loss}


def test_bf16_check():
    ok = gpu_bench.judge_bf16(0, [started(), progress(12.5), progress(12.1), DONE], "")
    assert ok[0] == "pass" and "bf16 on NVIDIA H200" in ok[1]
    assert gpu_bench.judge_bf16(0, [started(precision="fp32"), progress(1.0), DONE], "")[0] == "fail"
    assert gpu_bench.judge_bf16(0, [started(), progress(float("nan")), DONE], "")[0] == "fail"
    crashed = gpu_bench.judge_bf16(1, [started(), {"type": "error", "code": "internal", "message": "boom"}], "")
    assert crashed == ("fail", "internal: boom")


def test_oom_check_needs_a_back_off_and_a_completed_step():
    retry = {"type": "warning", "code": "oom_retry", "message": "CUDA out of memory at step 1 with micro-batch 512: ..."}
    assert gpu_bench.judge_oom(0, [started(), retry, dict(retry), progress(12.0), DONE], "", 512)[0] == "pass"
    no_oom = gpu_bench.judge_oom(0, [started(), progress(12.0), DONE], "", 512)
    assert no_oom[0] == "fail" and "no out-of-memory happened" in no_oom[1]
    gave_up = gpu_bench.judge_oom(1, [started(), retry, {"type": "error", "code": "out_of_memory", "message": "CUDA out of memory at step 1 with micro-batch 1"}], "", 512)
    assert gave_up[0] == "fail" and "out_of_memory" in gave_up[1] and "after 1 back-off" in gave_up[1]


def test_fused_and_ddp_checks():
    answer = {"optimizer": "AdamW", "fused": True, "changed": True, "finite": True, "groups": 2, "loss": 8.9}
    assert gpu_bench.judge_fused(0, answer, "")[0] == "pass"
    assert gpu_bench.judge_fused(0, {**answer, "fused": False}, "")[0] == "fail"
    assert gpu_bench.judge_fused(0, {**answer, "changed": False}, "")[0] == "fail"
    assert gpu_bench.judge_fused(1, None, "RuntimeError: fused=True requires all the params to be floating point")[0] == "fail"
    assert gpu_bench.judge_ddp(0, [started(world_size=2), progress(1.0), DONE], "")[0] == "pass"
    assert gpu_bench.judge_ddp(0, [started(world_size=1), progress(1.0), DONE], "")[0] == "fail"


def test_run_checks_skips_ddp_on_one_gpu_and_everything_without_one(tmp_path):
    runs = []

    def train(work, name, method, training):
        runs.append((name, method, training))
        events = [started(), progress(10.0), DONE]
        if name == "oom":
            events.insert(1, {"type": "warning", "code": "oom_retry", "message": "retrying with micro-batch 256"})
        return 0, events, ""

    fused = lambda work: (0, {"optimizer": "AdamW", "fused": True, "changed": True, "finite": True, "groups": 2, "loss": 1.0}, "")  # noqa: E731
    one_gpu = gpu_bench.run_checks(1, tmp_path, train=train, fused=fused)
    assert [(n, s) for n, s, _ in one_gpu] == [("bf16 autocast", "pass"), ("fused AdamW", "pass"), ("OOM back-off", "pass"),
                                               ("2-process DDP", "skipped")]
    assert one_gpu[-1][2] == "1 CUDA device (needs 2)"
    assert [r[0] for r in runs] == ["bf16", "oom"] and runs[1][2]["batch_size"] == 512
    assert all(s == "skipped" and seen == "no CUDA device: skipped" for _, s, seen in gpu_bench.run_checks(0, None))
