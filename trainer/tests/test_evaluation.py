"""End-of-run and on-demand evaluation (evaluation.py): scores, the base model view, and a real prefix-tuning run whose
greedy answers agree with its ONNX export's."""

import pytest
import torch

from bloom_peft import evaluation
from bloom_peft.config import parse_config, parse_method, parse_model
from bloom_peft.methods import apply_method
from bloom_peft.model_loading import load_base_model
from bloom_peft.paths import PROJECT_ROOT
from train_harness import make_config, model_name, run_in_process, run_trainer, write_config

EN_TASKS = PROJECT_ROOT / "examples" / "en-tasks"


def test_scores_are_character_level_and_work_for_chinese():
    assert evaluation.rouge_l("红色 游泳", "红色 游泳") == 1.0
    assert evaluation.rouge_l("红色游泳", "红色 游泳") == 1.0  # spaces carry no meaning across scripts
    assert evaluation.rouge_l("红色", "红色 游泳") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert evaluation.rouge_l("abc", "xyz") == 0.0 and evaluation.rouge_l("", "") == 1.0
    assert evaluation.exact(" 父亲、武汉\n", "父亲、武汉") and not evaluation.exact("父亲", "父亲、武汉")
    s = evaluation.score(["父亲、武汉", "x"], ["父亲、武汉", "猴子 面条"])
    assert (s["exact"], s["exact_match"]) == (1, 0.5) and s["rouge_l"] == pytest.approx(0.5)


def test_verdicts():
    none = {"exact": 0, "exact_match": 0.0, "rouge_l": 0.4}
    some = {"exact": 2, "exact_match": 0.5, "rouge_l": 0.6}
    assert evaluation.verdict(none, None) == "no_exact_answers"
    assert evaluation.verdict(some, {"exact": 2, "exact_match": 0.5, "rouge_l": 0.7}) == "not_better_than_base"
    assert evaluation.verdict(some, {"exact": 1, "exact_match": 0.25, "rouge_l": 0.7}) == "ok"
    assert "0 of 4" in evaluation.message(none, some, 4, "no_exact_answers")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    return model_name(tmp_path_factory.mktemp("model"))


def test_base_view_swaps_the_pretraining_biases_back_for_bitfit(model):
    base, tok = load_base_model(parse_model(model))
    ids = torch.tensor([tok("Human: hello\n\nAssistant: ")["input_ids"]])
    with torch.no_grad():
        want = base(input_ids=ids).logits
    bitfit = apply_method(base, parse_method({"name": "bitfit"}), tok)
    snapshot = evaluation.base_snapshot(bitfit, "bitfit")
    with torch.no_grad():
        for name, p in bitfit.named_parameters():
            if name.endswith("bias"):
                p.add_(0.5)  # "training"
        trained = bitfit(input_ids=ids).logits
        with evaluation.base_view(bitfit, "bitfit", snapshot) as view:
            torch.testing.assert_close(view(input_ids=ids).logits, want)
        torch.testing.assert_close(bitfit(input_ids=ids).logits, trained)  # and the trained biases are back
    assert not torch.allclose(trained, want)


def ort_greedy(export_dir, prompt_ids: list[int], eos_id: int, max_new_tokens: int) -> list[int]:
    """Greedy decoding through the exported graph with onnxruntime (the path the completion engine serves)."""
    from bloom_peft.testing.parity import OrtDecoder

    decoder = OrtDecoder(export_dir)
    logits, past = decoder.step([prompt_ids], decoder.initial_past())
    out: list[int] = []
    for _ in range(max_new_tokens):
        token = int(logits[0, -1].argmax())
        if token == eos_id:
            break
        out.append(token)
        logits, past = decoder.step([[token]], past)
    return out


def test_prefix_tuning_run_evaluates_at_the_end_like_its_onnx_export_and_on_demand(model, tmp_path):
    config = make_config(model, {"name": "prefix_tuning", "num_virtual_tokens": 8},
                         training={"max_steps": 12, "learning_rate": 3e-2},
                         data={"train_file": str(EN_TASKS / "train.jsonl"), "eval_file": str(EN_TASKS / "heldout.jsonl")},
                         export=True)
    run = tmp_path / "run"
    write_config(run, config)
    rc, events = run_in_process("train", run)  # every event checked against the schema
    assert rc == 0, events[-1]
    types = [e["type"] for e in events]
    assert types[-1] == "done" and "evaluation" in types and types.index("evaluation") < types.index("done")
    ev = next(e for e in events if e["type"] == "evaluation")
    assert ev["trigger"] == "end_of_run" and ev["step"] == 12 and 1 <= ev["rows"] <= evaluation.DEFAULT_ROWS
    assert ev["verdict"] == evaluation.verdict(ev, ev["base"]) and ev["base"] is not None
    assert 0 <= ev["exact"] <= ev["rows"] and 0 <= ev["rouge_l"] <= 1
    assert ev["samples"] and all(s["base_answer"] is not None for s in ev["samples"])

    # the ONNX export (prefix KV + base graph) gives the same greedy answers as the evaluation's PyTorch path
    _, tok = load_base_model(parse_config(config).model)
    for sample in ev["samples"][:3]:
        ids = ort_greedy(run / "export", tok(sample["prompt"])["input_ids"], tok.eos_token_id, ev["max_new_tokens"])
        assert tok.decode(ids, skip_special_tokens=True) == sample["answer"]

    # on demand, from the saved adapter: the same figures
    again = evaluation.evaluate_run(run)
    assert again["trigger"] == "on_demand" and again["step"] == 12
    for key in ("rows", "exact", "verdict"):
        assert again[key] == ev[key], key
    assert again["rouge_l"] == pytest.approx(ev["rouge_l"], abs=1e-6)
    assert again["base"]["exact"] == ev["base"]["exact"]

    # the command line: events on stdout (checked against the schema), --rows honoured; a folder that is no run
    rc, events, proc = run_trainer("evaluate", run, "--rows", "4")
    assert rc == 0 and not proc.bad_lines, (proc.bad_lines, proc.stderr_tail())
    cli = next(e for e in events if e["type"] == "evaluation")
    assert cli["rows"] == min(4, ev["rows"]) and cli["trigger"] == "on_demand"
    rc, events, _ = run_trainer("evaluate", tmp_path / "no-run")
    assert rc == 2 and events[-1]["type"] == "error" and "not a run folder" in events[-1]["message"]


def test_long_free_form_answers_are_judged_by_rouge_against_the_base_model():
    """References longer than the answer budget (alpaca's paragraphs) cannot match exactly: the verdict compares
    ROUGE-L with the base model's, and the message says why exact match is 0."""
    result, base = {"exact": 0, "exact_match": 0.0, "rouge_l": 0.4}, {"exact": 0, "exact_match": 0.0, "rouge_l": 0.2}
    assert evaluation.verdict(result, base, exact_possible=False) == "ok"
    assert evaluation.verdict(base, result, exact_possible=False) == "not_better_than_base"
    assert "3 of 3 references are longer than the 64-token answer budget" in evaluation.message(result, base, 3, "ok", 3, 64)
