"""Parity helpers: adapters for every method (perturbed so none is the identity), a reference ONNX decoding loop
that follows docs/export.md exactly as the TypeScript engine must, and the PyTorch references it is compared with."""
from __future__ import annotations

import json
from pathlib import Path

# every method and the variants whose reduction differs (name -> method config)
VARIANTS: dict[str, dict] = {
    "full": {"name": "full"},
    "bitfit": {"name": "bitfit"},
    "prompt_tuning": {"name": "prompt_tuning", "num_virtual_tokens": 4},
    "prompt_tuning_text": {"name": "prompt_tuning", "num_virtual_tokens": 6, "init": "text",
                           "init_text": "Convert the words as asked:"},
    "p_tuning_mlp": {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_type": "MLP", "encoder_hidden_size": 32},
    "p_tuning_lstm": {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_type": "LSTM", "encoder_hidden_size": 32},
    "prefix_tuning": {"name": "prefix_tuning", "num_virtual_tokens": 5},
    "prefix_tuning_projection": {"name": "prefix_tuning", "num_virtual_tokens": 5, "prefix_projection": True,
                                 "encoder_hidden_size": 32},
    "lora": {"name": "lora", "r": 4, "alpha": 8, "target_modules": ["query_key_value", "dense_4h_to_h"]},
    "ia3": {"name": "ia3"},
}


def perturb_(model, seed: int, scale: float = 0.5) -> None:
    """Move every trainable parameter away from its initial value (LoRA B and IA3 vectors start as the identity),
    relative to its own spread (or, for constant tensors such as zeros and ones, to its magnitude, at least 0.5)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.requires_grad:
                t = p.detach().float()
                spread = t.std().item() if p.numel() > 1 else 0.0
                ref = spread if spread > 1e-3 else max(t.abs().mean().item(), 0.5)
                p.add_((torch.randn(p.shape, generator=gen) * scale * ref).to(p.dtype))


def make_adapter(base_dir, variant: str, adapter_dir, *, seed: int = 0):
    """Build a trained-looking adapter for `variant` on the base model, save it like the trainer does
    (methods.save_trained) and return (the in-memory model in eval mode, tokenizer) as the PyTorch reference."""
    import torch

    from ..config import parse_method, parse_model
    from ..methods import apply_method, save_trained
    from ..model_loading import load_base_model

    torch.manual_seed(seed)
    base, tokenizer = load_base_model(parse_model(str(base_dir)))
    method = parse_method(VARIANTS[variant])
    model = apply_method(base, method, tokenizer)
    perturb_(model, seed)
    model.eval()
    save_trained(model, method, adapter_dir, tokenizer)
    return model, tokenizer


# ------------------------------------------------------------------------------------------------ PyTorch side


def torch_logits(model, ids: list[int]):
    """Logits [len(ids), vocab] for one sequence, whatever the method (prompt-learning models return the virtual
    positions too: they are dropped)."""
    import torch

    with torch.no_grad():
        x = torch.tensor([ids])
        out = model(input_ids=x, attention_mask=torch.ones_like(x)).logits
    return out[0, -len(ids):].float().numpy()


def torch_greedy(model, ids: list[int], steps: int) -> list[int]:
    """Greedy continuation recomputing the whole sequence each step (no cache: peft's prompt-learning generate path is
    not trusted)."""
    seq = list(ids)
    for _ in range(steps):
        seq.append(int(torch_logits(model, seq)[-1].argmax()))
    return seq[len(ids):]


# ------------------------------------------------------------------------------------------------ ONNX side


class OrtDecoder:
    """The export contract as a tiny engine: the prefix KV (if any) is the initial past ([positions, heads,
    head_dim]), each step feeds the past with past_length (an empty past as one zero row) and appends the new
    positions' KV (new_key_values) to it; greedy decoding takes the graph's next_tokens."""

    def __init__(self, export_dir, threads: int = 1):
        import numpy as np
        import onnxruntime as ort

        self.dir = Path(export_dir)
        self.manifest = json.loads((self.dir / "manifest.json").read_text(encoding="utf-8"))
        m = self.manifest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.dir / m["files"]["model"]), opts, providers=["CPUExecutionProvider"])
        self.names = [f"past_key_values.{i}.{kv}" for i in range(m["num_layers"]) for kv in ("key", "value")]
        self.new_names = [f"new_key_values.{i}.{kv}" for i in range(m["num_layers"]) for kv in ("key", "value")]
        self.dtype = np.float16 if m["dtype"] == "float16" else np.float32
        if m["files"]["prefix_kv"]:
            from safetensors.numpy import load_file

            stored = load_file(str(self.dir / m["files"]["prefix_kv"]))
            self.prefix = [stored[n] for n in self.names]
        else:
            self.prefix = [np.zeros((0, m["num_heads"], m["head_dim"]), self.dtype) for _ in self.names]

    def initial_past(self):
        return list(self.prefix)

    def run(self, ids, slots, past_length: int, logits_to_keep: int = 0, *, logits: bool = True):
        """(logits [1, kept, vocab] or None, next_tokens [kept], new KV) for new tokens `ids` [1, seq] after the first
        past_length rows of `slots`. logits=False fetches the graph's argmax alone, as the engine's greedy steps do."""
        import numpy as np

        slots = [s if len(s) else np.zeros((1, *s.shape[1:]), s.dtype) for s in slots]  # the graph takes >= 1 row
        heads = ["logits", "next_tokens"] if logits else ["next_tokens"]
        out = self.session.run([*heads, *self.new_names], {
            "input_ids": np.asarray(ids, np.int64), **dict(zip(self.names, slots)),
            "past_length": np.array(past_length, np.int64), "logits_to_keep": np.array(logits_to_keep, np.int64)})
        return (out[0] if logits else None), out[len(heads) - 1], out[len(heads):]

    def step(self, ids, past):
        """(logits [1, seq, vocab], past + the new positions) for new tokens `ids` [1, seq] after `past`."""
        logits, _, new = self.run(ids, past, len(past[0]))
        return logits, _extend(past, new)

    def greedy_step(self, ids, past):
        """(the graph's argmax of the last position, past + the new positions): a greedy decode step, fetching no
        logits."""
        _, next_tokens, new = self.run(ids, past, len(past[0]), 1, logits=False)
        return int(next_tokens[-1]), _extend(past, new)

    def logits(self, ids: list[int]):
        return self.step([ids], self.initial_past())[0][0]

    def greedy(self, ids: list[int], steps: int) -> list[int]:
        """The engine's greedy loop: every token is the graph's argmax (next_tokens), no logits fetched."""
        token, past = self.greedy_step([ids], self.initial_past())
        out = []
        for _ in range(steps):
            out.append(token)
            token, past = self.greedy_step([[token]], past)
        return out


def _extend(past, new):
    import numpy as np

    return [np.concatenate([p, n], axis=0) for p, n in zip(past, new)]


def assert_same_onnx_model(a: Path, b: Path) -> None:
    """Two exports' model.onnx hold the same nodes in the same order and byte-equal initializers (a cached-base
    export against a whole-model one)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    ga, gb = (onnx.load(str(Path(d) / "model.onnx")).graph for d in (a, b))
    assert [n.op_type for n in ga.node] == [n.op_type for n in gb.node]
    ta = {t.name: numpy_helper.to_array(t) for t in ga.initializer}
    tb = {t.name: numpy_helper.to_array(t) for t in gb.initializer}
    assert ta.keys() == tb.keys()
    for name in ta:
        assert np.array_equal(ta[name], tb[name]), name
