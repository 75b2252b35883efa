"""Does the run answer its held-out rows? Greedy answers in the run's template, scored by exact match and a
character-level ROUGE-L, next to the base model's answers to the same rows (docs/trainer.md, "Evaluation").

Run at the end of every completed run (train.py) and on demand (`python -m bloom_peft evaluate --run-dir DIR`).
Kept cheap: the first `rows` eval rows (32), greedy, batched, at most a few tokens more than the longest reference.

Generation does not go through peft's generate(): prompt-learning methods are served exactly as the ONNX export
serves them, by the base model with the constant prefix KV (export.compute_prefix_kv); LoRA/IA3 layers already sit
inside the base model; BitFit and full fine-tuning are the model itself. The base model is the same model with the
adapter disabled, no prefix, or the pre-training weights swapped back in (BitFit, full).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .errors import ConfigError, DataError, InternalError, TrainerError, as_trainer_error
from .log import log

DEFAULT_ROWS = 32
DEFAULT_MAX_NEW_TOKENS = 64
BATCH_ROWS = 16
SAMPLES = 5
SAMPLE_CHARS = 300
PROMPT_LEARNING = ("prompt_tuning", "p_tuning", "prefix_tuning")
SNAPSHOT_METHODS = ("bitfit", "full")  # methods that change the base weights in place


# ---------------------------------------------------------------------------------------------------- scores

def _chars(text: str) -> list[str]:
    """Characters compared by ROUGE-L: whitespace carries no meaning across scripts (Chinese has none)."""
    return [c for c in text if not c.isspace()]


def lcs_length(a, b) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """Character-level ROUGE-L F1 (longest common subsequence over non-space characters); 1.0 for two empty texts."""
    p, r = _chars(prediction), _chars(reference)
    if not p or not r:
        return 1.0 if p == r else 0.0
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def exact(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


def score(predictions: list[str], references: list[str]) -> dict:
    n = len(references)
    hits = sum(exact(p, r) for p, r in zip(predictions, references))
    rouge = sum(rouge_l(p, r) for p, r in zip(predictions, references)) / n if n else 0.0
    return {"exact": hits, "exact_match": hits / n if n else 0.0, "rouge_l": rouge}


def verdict(result: dict, base: dict | None, exact_possible: bool = True) -> str:
    """`no_exact_answers`: not one row answered exactly; `not_better_than_base`: the base model does as well on
    both scores; `ok` otherwise. When no reference fits the answer budget (long free-form answers, as alpaca's), exact
    match is impossible and only ROUGE-L against the base model's decides."""
    if not exact_possible:
        return "not_better_than_base" if base is not None and result["rouge_l"] <= base["rouge_l"] else "ok"
    if result["exact"] == 0:
        return "no_exact_answers"
    if base is not None and result["exact"] <= base["exact"] and result["rouge_l"] <= base["rouge_l"]:
        return "not_better_than_base"
    return "ok"


def message(result: dict, base: dict | None, rows: int, kind: str, too_long: int = 0, budget: int = 0) -> str:
    text = f"answered {result['exact']} of {rows} held-out rows exactly (ROUGE-L {result['rouge_l']:.2f})"
    if base is not None:
        text += f"; the base model {base['exact']} of {rows} (ROUGE-L {base['rouge_l']:.2f})"
    if too_long:
        text += f"; {too_long} of {rows} references are longer than the {budget}-token answer budget and cannot match exactly"
    if kind == "no_exact_answers":
        text += ": the adapter does not answer its held-out rows yet; train longer or raise the learning rate"
    elif kind == "not_better_than_base":
        text += ": no better than the base model"
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------------------------------------------- generation

def pad_prompts(prompts: list[list[int]], pad_id: int):
    """Left-padded ids and mask: every row's next token is at the last position (BLOOM's ALiBi positions come from
    the attention mask, so left padding changes nothing for a row)."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids, mask


def greedy_generate(lm, prompts: list[list[int]], *, eos_id: int, pad_id: int, max_new_tokens: int,
                    prefix=None, batch_rows: int = BATCH_ROWS) -> list[list[int]]:
    """Greedy continuations (EOS excluded) of token-id prompts by a BloomForCausalLM, optionally behind a constant
    prefix KV [(key, value) per layer, batch 1]; batches of `batch_rows`, each stopping when all its rows ended."""
    import torch
    from transformers.cache_utils import DynamicCache

    device = next(lm.parameters()).device
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_rows):
        chunk = prompts[start:start + batch_rows]
        ids, mask = pad_prompts(chunk, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        n = ids.shape[0]
        cache = None
        if prefix is not None:
            cache = DynamicCache(tuple((k.to(device).expand(n, -1, -1, -1).contiguous(),
                                        v.to(device).expand(n, -1, -1, -1).contiguous()) for k, v in prefix))
            mask = torch.cat([torch.ones((n, prefix[0][0].shape[2]), dtype=mask.dtype, device=device), mask], dim=1)
        generated: list[list[int]] = [[] for _ in range(n)]
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        step_ids = ids
        for _ in range(max_new_tokens):
            result = lm(input_ids=step_ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = result.past_key_values
            next_ids = result.logits[:, -1].float().argmax(dim=-1)
            finished |= next_ids == eos_id
            for i, tok in enumerate(next_ids.tolist()):
                if not finished[i]:
                    generated[i].append(tok)
            if bool(finished.all()):
                break
            step_ids = next_ids.unsqueeze(1)
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        out.extend(generated)
    return out


def served(model, method: str):
    """(BloomForCausalLM, prefix KV or None) computing what the trained model computes, as the export serves it."""
    if method in PROMPT_LEARNING:
        from .export import compute_prefix_kv

        return model.get_base_model(), compute_prefix_kv(model)
    if method in ("lora", "ia3"):
        return model.get_base_model(), None  # peft injected its layers into the base model's modules
    return model, None


def base_snapshot(model, method: str) -> dict | None:
    """The weights BitFit / full fine-tuning will change, copied to the CPU before training (None for peft methods,
    whose base weights stay untouched). Full fine-tuning: one more copy of the model in host memory."""
    if method not in SNAPSHOT_METHODS:
        return None
    return {k: p.detach().to("cpu", copy=True) for k, p in model.named_parameters()
            if method == "full" or k.endswith("bias")}


@contextlib.contextmanager
def base_view(model, method: str, snapshot: dict | None):
    """The base model inside `with`: the adapter disabled, no prefix, or the snapshot's weights swapped in."""
    if method in ("lora", "ia3"):
        with model.disable_adapter():
            yield model.get_base_model()
        return
    if method in PROMPT_LEARNING:
        yield model.get_base_model()
        return
    if snapshot is None:
        raise ValueError(f"{method}: the base weights were not kept")
    params = dict(model.named_parameters())
    trained = {}
    try:
        for k, t in snapshot.items():
            trained[k] = params[k].data
            params[k].data = t.to(device=trained[k].device, dtype=trained[k].dtype)
        yield model
    finally:
        for k, t in trained.items():
            params[k].data = t


# ---------------------------------------------------------------------------------------------------- evaluation

def pick_rows(examples: list[dict], rows: int) -> list[dict]:
    """The first `rows` eval rows that have a prompt and a reference answer (instruction/completion data)."""
    return [e for e in examples if e.get("response") is not None and e.get("prompt")][:rows]


def evaluate(model, method: str, tokenizer, examples: list[dict], *, snapshot: dict | None = None,
             rows: int = DEFAULT_ROWS, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, compare_base: bool = True,
             autocast=contextlib.nullcontext, step: int | None = None, trigger: str = "end_of_run") -> dict | None:
    """The `evaluation` event's fields for `model` (trained with `method`) on the eval examples (data.load_examples'
    rows, with their prompt and response texts); None when there is nothing to answer (no rows, text corpus)."""
    import torch

    chosen = pick_rows(examples, rows)
    if not chosen:
        return None
    t0 = time.time()
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    prompts = [tokenizer(e["prompt"])["input_ids"] for e in chosen]
    references = [e["response"] for e in chosen]
    lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references]
    budget = max(1, min(max_new_tokens, max(lengths) + 8))  # a right answer needs its tokens and EOS; a few spare
    too_long = sum(n >= budget for n in lengths)  # an answer of `budget` tokens has no room for its EOS

    def answers(lm, prefix) -> list[str]:
        ids = greedy_generate(lm, prompts, eos_id=eos_id, pad_id=pad_id, max_new_tokens=budget, prefix=prefix)
        return [tokenizer.decode(g, skip_special_tokens=True) for g in ids]

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast():
            lm, prefix = served(model, method)
            predictions = answers(lm, prefix)
            base_predictions = None
            if compare_base:
                with base_view(model, method, snapshot) as base_lm:
                    base_predictions = answers(base_lm, None)
    finally:
        model.train(was_training)
    result = score(predictions, references)
    base = score(base_predictions, references) if base_predictions is not None else None
    kind = verdict(result, base, exact_possible=too_long < len(chosen))
    samples = [{"prompt": e["prompt"][-SAMPLE_CHARS:], "reference": r[:SAMPLE_CHARS], "answer": p[:SAMPLE_CHARS],
                "exact": exact(p, r), "rouge_l": rouge_l(p, r),
                **({"base_answer": b[:SAMPLE_CHARS]} if base_predictions is not None else {})}
               for e, r, p, b in zip(chosen, references, predictions, base_predictions or [""] * len(chosen))][:SAMPLES]
    return {**({"step": step} if step is not None else {}), "trigger": trigger, "rows": len(chosen),
            "max_new_tokens": budget, "long_references": too_long, **result, "base": base, "verdict": kind,
            "message": message(result, base, len(chosen), kind, too_long, budget), "samples": samples,
            "runtime_s": time.time() - t0}


# ---------------------------------------------------------------------------------------------------- a finished run

def evaluate_run(run_dir, *, rows: int = DEFAULT_ROWS, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 compare_base: bool = True) -> dict:
    """Evaluate RUN_DIR/adapter with RUN_DIR/config.json's data and template (the `evaluate` command)."""
    import torch

    from .config import load_config
    from .data import load_examples
    from .methods import load_trained
    from .model_loading import load_base_model

    run_dir = Path(run_dir).resolve()
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json)", file=str(config_file),
                          hint="Give the folder of a run (bloom-peft runs lists them).")
    config = load_config(config_file)
    adapter = run_dir / "adapter"
    if not adapter.is_dir():
        raise TrainerError("no_adapter", f"{adapter} does not exist: the run has not saved an adapter yet",
                           hint="Evaluate after training finishes (or resume the run to let it finish).",
                           file=str(adapter))
    if config.data is not None and config.data.format == "text":
        raise DataError("a text-corpus run has no answers to check", field="/data/format",
                        hint="Evaluation generates answers to instruction or completion rows.")
    method = config.method.name
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seed = config.training.seed
    if config.model.config_only:
        from accelerate.utils import set_seed

        set_seed(seed)  # the run's random base weights (export.py does the same)
    base, tokenizer = load_base_model(config.model, device=device, dtype=torch.float32)
    _, examples = load_examples(config, tokenizer, base_dir=run_dir)
    if not pick_rows(examples, rows):
        raise DataError("the run has no held-out rows to answer", field="/data/eval_split",
                        hint="Set data.eval_split above 0 or give data.eval_file.")
    snapshot = base_snapshot(base, method) if method == "bitfit" else None
    if method == "full":
        model = load_trained(base, config.method, adapter)  # the saved model; `base` stays the base
        model_base = base
    else:
        model, model_base = load_trained(base, config.method, adapter), None
    log(f"evaluate: {method} adapter of {run_dir.name} on {min(rows, len(examples))} held-out rows ({device})")
    if model_base is not None:
        fields = evaluate(model, method, tokenizer, examples, rows=rows, max_new_tokens=max_new_tokens,
                          compare_base=False, trigger="on_demand")
        assert fields is not None  # pick_rows found rows above
        if compare_base:
            base_fields = evaluate(model_base, "full", tokenizer, examples, rows=rows, max_new_tokens=max_new_tokens,
                                   compare_base=False)
            assert base_fields is not None  # the same rows
            fields["base"] = {k: base_fields[k] for k in ("exact", "exact_match", "rouge_l")}
            long = fields["long_references"]
            fields["verdict"] = verdict(fields, fields["base"], exact_possible=long < fields["rows"])
            fields["message"] = message(fields, fields["base"], fields["rows"], fields["verdict"], long, fields["max_new_tokens"])
            for sample, b in zip(fields["samples"], base_fields["samples"]):
                sample["base_answer"] = b["answer"]
    else:
        fields = evaluate(model, method, tokenizer, examples, snapshot=snapshot, rows=rows,
                          max_new_tokens=max_new_tokens, compare_base=compare_base, trigger="on_demand")
        assert fields is not None  # pick_rows found rows above
    fields["step"] = _adapter_step(run_dir)
    return fields


def _adapter_step(run_dir: Path) -> int:
    """The step the adapter was saved at: the newest complete checkpoint's (train.py saves both at the end)."""
    from . import checkpoint as ckpt

    latest = ckpt.latest_complete(run_dir)
    return int(latest.name.split("-")[1]) if latest is not None else 0


def run(args) -> int:
    """`python -m bloom_peft evaluate --run-dir DIR`: events on stdout (log..., evaluation), or error."""
    from .protocol import claim_stdout

    emitter = claim_stdout()
    try:
        if args.rows < 1 or args.max_new_tokens < 1:
            raise ConfigError("--rows and --max-new-tokens must be at least 1", field="--rows")
        fields = evaluate_run(args.run_dir, rows=args.rows, max_new_tokens=args.max_new_tokens,
                              compare_base=not args.no_base)
    except Exception as e:  # noqa: BLE001 - reported as an event, a bug's traceback on stderr
        error = as_trainer_error(e)
        if isinstance(error, InternalError):
            import traceback

            traceback.print_exc()
        emitter.emit("error", **error.event_fields())
        return error.exit_code
    emitter.emit("evaluation", **fields)
    return 0
