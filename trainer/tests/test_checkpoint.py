"""checkpoint.py in-process: atomic layout, round trip of every piece of state, pruning, partial checkpoints."""
import json
import random

import numpy as np
import pytest
import torch

from bloom_peft import checkpoint as ckpt


def _state(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def _save(run_dir, step, model, opt, sched, **extra):
    return ckpt.save_checkpoint(run_dir, step, weights=dict(model.state_dict()), optimizer_state=opt.state_dict(),
                                scheduler_state=sched.state_dict(), scaler_state=extra.get("scaler"),
                                trainer_state={"epoch": 1, "batch_in_epoch": 3, "micro_batch": 4})


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    model, opt, sched = _state()
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    path = _save(tmp_path, 3, model, opt, sched, scaler={"scale": 1024.0, "growth_factor": 2.0})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)

    assert path == tmp_path / "checkpoints" / "step-3" and ckpt.is_complete(path)
    assert not any(p.suffix in (".pt", ".bin", ".pkl") for p in path.iterdir())  # nothing to unpickle
    state = ckpt.load_checkpoint(path)
    model2, opt2, sched2 = _state(seed=1)
    model2.load_state_dict(state["weights"])
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    for (_, s1), (_, s2) in zip(sorted(opt.state_dict()["state"].items()), sorted(opt2.state_dict()["state"].items())):
        for k in s1:
            assert torch.equal(s1[k], s2[k]), k
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert state["scaler"] == {"scale": 1024.0, "growth_factor": 2.0}
    assert state["trainer_state"] == {"epoch": 1, "batch_in_epoch": 3, "micro_batch": 4, "step": 3}
    ckpt.restore_rng(*state["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_marker_is_last_and_lists_every_file(tmp_path, monkeypatch):
    model, opt, sched = _state()
    written = []
    real = ckpt._write_bytes
    monkeypatch.setattr(ckpt, "_write_bytes", lambda p, d: (written.append(p.name), real(p, d)))
    path = _save(tmp_path, 1, model, opt, sched)
    assert written[-1] == ckpt.MARKER
    marker = json.loads((path / ckpt.MARKER).read_text())
    assert sorted(marker["files"]) == sorted(n for n in written[:-1])


def test_interrupted_write_leaves_only_a_temp_folder(tmp_path, monkeypatch):
    model, opt, sched = _state()
    _save(tmp_path, 2, model, opt, sched)
    real, calls = ckpt._write_bytes, []

    def crash_on_third(p, d):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for SIGKILL mid-write (the real kill is in test_train_resume.py)
        real(p, d)

    monkeypatch.setattr(ckpt, "_write_bytes", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 4, model, opt, sched)
    assert not (tmp_path / "checkpoints" / "step-4").exists()
    assert calls[0].parent.name.startswith(ckpt.TMP_PREFIX)
    assert ckpt.latest_complete(tmp_path).name == "step-2"
    removed = ckpt.clean_stale(tmp_path)
    assert [p.name for p in removed] == [calls[0].parent.name]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-2"]


def test_partial_or_corrupt_step_folders_are_skipped(tmp_path):
    model, opt, sched = _state()
    _save(tmp_path, 5, model, opt, sched)
    no_marker = tmp_path / "checkpoints" / "step-9"
    no_marker.mkdir()
    (no_marker / "trainable.safetensors").write_bytes(b"partial")
    truncated = _save(tmp_path, 7, model, opt, sched)
    with open(truncated / "optimizer.safetensors", "r+b") as f:
        f.truncate(10)  # the marker's recorded size no longer matches
    assert [(s, ok) for s, _, ok in ckpt.list_checkpoints(tmp_path)] == [(5, True), (7, False), (9, False)]
    assert ckpt.latest_complete(tmp_path).name == "step-5"
    with pytest.raises(ValueError):
        ckpt.load_checkpoint(truncated)
    ckpt.clean_stale(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-5"]


def test_prune_keeps_the_newest_k_and_never_the_newest_alone(tmp_path):
    model, opt, sched = _state()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, model, opt, sched)
    (tmp_path / "checkpoints" / "step-10").mkdir()  # incomplete: not counted, not a reason to drop a good one
    ckpt.prune(tmp_path, 2)
    assert [(s, ok) for s, _, ok in ckpt.list_checkpoints(tmp_path)] == [(3, True), (4, True), (10, False)]
    ckpt.prune(tmp_path, 0)  # below one is treated as one: the newest complete checkpoint always stays
    assert ckpt.latest_complete(tmp_path).name == "step-4"


def test_saving_an_existing_complete_step_keeps_it(tmp_path):
    model, opt, sched = _state()
    path = _save(tmp_path, 6, model, opt, sched)
    before = (path / ckpt.MARKER).read_text()
    assert _save(tmp_path, 6, model, opt, sched) == path
    assert (path / ckpt.MARKER).read_text() == before
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(ckpt.TMP_PREFIX)]


def test_shared_and_strided_tensors_are_saved(tmp_path):
    model, opt, sched = _state()
    w = torch.randn(4, 4)
    weights = {"a": w, "b": w, "t": w.t()}  # shared storage and a non-contiguous view: safetensors needs copies
    ckpt.save_checkpoint(tmp_path, 1, weights=weights, optimizer_state=opt.state_dict(),
                         scheduler_state=sched.state_dict(), scaler_state=None, trainer_state={})
    loaded = ckpt.load_checkpoint(tmp_path / "checkpoints" / "step-1")["weights"]
    assert torch.equal(loaded["a"], w) and torch.equal(loaded["t"], w.t())


def test_the_fault_seam_sees_every_file_before_the_marker(tmp_path):
    """The seam the kill-mid-checkpoint tests slow down: called once per written file, the marker not yet there."""
    from bloom_peft.faults import Faults

    seen = []

    class Recorder(Faults):
        def checkpoint_file_written(self, path):
            seen.append((path.name, path.parent.name.startswith(ckpt.TMP_PREFIX), (path.parent / ckpt.MARKER).exists()))

    model, opt, sched = _state()
    ckpt.save_checkpoint(tmp_path, 1, weights=dict(model.state_dict()), optimizer_state=opt.state_dict(),
                         scheduler_state=sched.state_dict(), scaler_state=None, trainer_state={}, faults=Recorder())
    assert [name for name, _, _ in seen] == ["trainable.safetensors", "optimizer.safetensors", "optimizer.json",
                                             "scheduler.json", "rng.safetensors", "rng.json", "trainer_state.json"]
    assert all(in_tmp and not marker for _, in_tmp, marker in seen)
