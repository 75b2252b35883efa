"""Datasets on the embedded model's tokenizer: every file format, column mapping, the tutorial's template and its
masking, truncation, eval splits, corpora, hub datasets, batching, and bad inputs named by file, line and field."""
import json
import random

import pytest
import torch

from bloom_peft.config import parse_config, parse_template
from bloom_peft.data import (
    IGNORE_INDEX,
    collate,
    length_grouped_batches,
    load_examples,
    load_splits,
    render_example,
    split_rows,
)
from bloom_peft.errors import DataError
from bloom_peft.model_loading import load_tokenizer
from trainer_data_model import CORPUS, TASKS, model_name


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(model_name())


def raw_cfg(train_file, fmt="instruction", data=None, template=None, **training):
    c = {"model": {"name_or_path": model_name()}, "method": {"name": "lora"},
         "data": {"format": fmt, "train_file": str(train_file), **(data or {})}, "training": training}
    if template is not None:
        c["template"] = template
    return c


def cfg(*args, **kwargs):
    return parse_config(raw_cfg(*args, **kwargs))


def alpaca_rows(n=400):
    return [json.loads(line) for line in (TASKS / "train.jsonl").read_text().splitlines()][:n]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_json_jsonl_csv_give_identical_rows(tok):
    got = {f: load_splits(cfg(TASKS / f), tok) for f in ("train.jsonl", "train.json", "train.csv")}
    assert got["train.jsonl"] == got["train.json"] == got["train.csv"]
    train, evals = got["train.jsonl"]
    assert len(train) + len(evals) == len(alpaca_rows()) and len(evals) == round(0.1 * len(alpaca_rows()))


def test_tutorial_template_and_exact_masking(tok):
    """input_ids = tok(("Human: "+instruction+"\\n"+input).strip()+"\\n\\nAssistant: ") + tok(output) + [eos];
    labels are -100 on exactly the prompt tokens and equal the ids after them."""
    rows = alpaca_rows(30)
    train, _ = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0, "max_samples": 30}, max_length=256), tok)
    assert len(train) == 30
    for row, ex in zip(rows, train):
        prompt = ("Human: " + row["instruction"] + "\n" + row["input"]).strip() + "\n\nAssistant: "
        p_ids = tok(prompt)["input_ids"]
        assert ex["input_ids"] == p_ids + tok(row["output"])["input_ids"] + [tok.eos_token_id]
        n = len(p_ids)
        assert ex["labels"][:n] == [IGNORE_INDEX] * n
        assert ex["labels"][n:] == ex["input_ids"][n:] and IGNORE_INDEX not in ex["labels"][n:]
        assert render_example(row) == (prompt, row["output"])
    unmasked, _ = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0}, template={"mask_prompt": False}), tok)
    assert all(ex["labels"] == ex["input_ids"] for ex in unmasked)
    no_eos, _ = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0}, template={"add_eos": False}), tok)
    assert [ex["input_ids"] + [tok.eos_token_id] for ex in no_eos[:30]] == [ex["input_ids"] for ex in train]


def test_empty_input_and_custom_template(tok):
    assert render_example({"instruction": "Say hi", "input": "", "output": "hi"}) == ("Human: Say hi\n\nAssistant: ", "hi")
    t = parse_template({"prompt": "### Task {instruction} {{braces}} {input}", "response_prefix": "\n### Answer\n"})
    assert render_example({"instruction": "sort", "input": "a {b}", "output": "x"}, t) == (
        "### Task sort {{braces}} a {b}\n### Answer\n", "x")


def test_column_mapping(tok, tmp_path):
    rows = [{"q": r["instruction"], "ctx": r["input"], "a": r["output"], "extra": 1} for r in alpaca_rows(40)]
    mapped = load_splits(cfg(write_jsonl(tmp_path / "m.jsonl", rows), data={"columns": {"instruction": "q", "input": "ctx", "output": "a"},
                                                                             "eval_split": 0}), tok)
    plain = load_splits(cfg(write_jsonl(tmp_path / "p.jsonl", alpaca_rows(40)), data={"eval_split": 0}), tok)
    assert mapped == plain
    # a missing optional input column is an empty input
    no_input = [{"instruction": "Say hi", "output": "hi"}]
    ex, _ = load_examples(cfg(write_jsonl(tmp_path / "n.jsonl", no_input), data={"eval_split": 0}), tok)
    assert ex[0]["prompt"] == "Human: Say hi\n\nAssistant: "


def test_completion_format(tok, tmp_path):
    rows = [{"prompt": "def add(a, b):", "completion": "\n    return a + b"}, {"src": "x =", "tgt": " 1"}]
    write_jsonl(tmp_path / "c.jsonl", rows[:1])
    ex, _ = load_examples(cfg(tmp_path / "c.jsonl", "completion", {"eval_split": 0}), tok)
    assert ex[0]["prompt"] == "Human: def add(a, b):\n\nAssistant: " and ex[0]["response"] == "\n    return a + b"
    raw, _ = load_examples(cfg(tmp_path / "c.jsonl", "completion", {"eval_split": 0}, {"prompt": "{prompt}", "response_prefix": ""}), tok)
    assert raw[0]["prompt"] == "def add(a, b):"
    assert raw[0]["input_ids"] == tok("def add(a, b):")["input_ids"] + tok("\n    return a + b")["input_ids"] + [tok.eos_token_id]
    write_jsonl(tmp_path / "m.jsonl", rows[1:])
    mapped, _ = load_examples(cfg(tmp_path / "m.jsonl", "completion", {"eval_split": 0, "columns": {"prompt": "src", "completion": "tgt"}}), tok)
    assert mapped[0]["prompt"] == "Human: x =\n\nAssistant: " and mapped[0]["response"] == " 1"


def test_truncation(tok, tmp_path):
    rows = alpaca_rows(20)
    full, _ = load_examples(cfg(TASKS / "train.jsonl", data={"eval_split": 0, "max_samples": 20}), tok)
    cut, _ = load_examples(cfg(TASKS / "train.jsonl", data={"eval_split": 0, "max_samples": 20}, max_length=32), tok)
    by_source = {a["source"]: a for a in full}
    for b in cut:
        a = by_source[b["source"]]
        assert b["input_ids"] == a["input_ids"][:32] and b["labels"] == a["labels"][:32]
        assert b["truncated"] == (len(a["input_ids"]) > 32)
    assert any(b["truncated"] for b in cut)
    assert len(cut) == sum(a["labels"][:32] != [IGNORE_INDEX] * min(32, len(a["labels"])) for a in full)
    # a row whose prompt alone fills max_length has nothing to learn: skipped with a warning naming it
    long = [{"instruction": "word " * 100, "input": "", "output": "x"}] + rows[:3]
    warnings = []
    train, _ = load_splits(cfg(write_jsonl(tmp_path / "l.jsonl", long), data={"eval_split": 0}, max_length=40), tok, warnings=warnings)
    assert len(train) == 3 and "l.jsonl:1" in warnings[0]
    with pytest.raises(DataError) as e:
        load_splits(cfg(write_jsonl(tmp_path / "all.jsonl", long[:1]), data={"eval_split": 0}, max_length=40), tok)
    assert e.value.field == "/training/max_length"


def test_eval_split_is_seeded_and_eval_file_is_used(tok):
    a = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0.2}), tok)
    b = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0.2}), tok)
    c = load_splits(cfg(TASKS / "train.jsonl", data={"eval_split": 0.2}, seed=7), tok)
    assert a == b and a[1] != c[1] and len(a[1]) == len(c[1]) == 80 and len(a[0]) == 320
    rows = list(range(10))
    tr, ev = split_rows(rows, 0.3, 42)
    assert sorted(tr + ev) == rows and len(ev) == 3 and tr == sorted(tr)  # train keeps the file order
    assert split_rows(rows, 0.0, 42) == (rows, [])
    given = load_splits(cfg(TASKS / "train.jsonl", data={"eval_file": str(TASKS / "heldout.jsonl")}), tok)
    assert len(given[0]) == 400 and len(given[1]) == len((TASKS / "heldout.jsonl").read_text().splitlines())
    capped = load_splits(cfg(TASKS / "train.jsonl", data={"max_samples": 50, "eval_split": 0.1}), tok)
    assert (len(capped[0]), len(capped[1])) == (45, 5)


def test_text_folder_is_chunked_into_blocks(tok, tmp_path):
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".py", ".js", ".ts", ".md", ".txt"))
    stream = []
    for f in files:
        stream += tok(f.read_text(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    train, evals = load_splits(cfg(CORPUS, "text", {"block_size": 32, "eval_split": 0}), tok)
    assert [t for r in train for t in r["input_ids"]] == stream[: len(stream) - (len(stream) % 32 == 1)]
    assert all(len(r["input_ids"]) == 32 for r in train[:-1]) and all(r["labels"] == r["input_ids"] for r in train)
    # extension filter, hidden and dependency folders skipped, block size capped by max_length
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("ignored " * 50)
    (tmp_path / "a.py").write_text("def f():\n    return 1\n" * 10)
    (tmp_path / "b.bin").write_bytes(b"\x00\xff" * 10)
    rows, _ = load_splits(cfg(tmp_path, "text", {"eval_split": 0}, max_length=16), tok)
    assert sum(len(r["input_ids"]) for r in rows) == len(tok("def f():\n    return 1\n" * 10)["input_ids"]) + 1
    assert max(len(r["input_ids"]) for r in rows) == 16
    single, held = load_splits(cfg(tmp_path / "a.py", "text", {"eval_split": 0.25}, max_length=16), tok)
    assert len(held) >= 1 and single


def test_hub_dataset_from_a_local_folder_and_offline_error(tok, tmp_path, monkeypatch):
    (tmp_path / "ds").mkdir()
    write_jsonl(tmp_path / "ds" / "train.jsonl", alpaca_rows(20))
    train, evals = load_splits(parse_config({**raw_cfg(TASKS / "x"), "data": {"format": "hub", "hub_id": str(tmp_path / "ds"), "eval_split": 0.1}}), tok)
    assert (len(train), len(evals)) == (18, 2)
    same = load_splits(cfg(tmp_path / "ds" / "train.jsonl", data={"eval_split": 0.1}), tok)
    assert (train, evals) == same
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    with pytest.raises(DataError) as e:
        load_splits(parse_config({**raw_cfg(TASKS / "x"), "data": {"format": "hub", "hub_id": "tatsu-lab/alpaca"}}), tok)
    assert e.value.field == "/data/hub_id" and "unreachable" in e.value.message and "file" in e.value.hint


def test_collate_right_pads(tok):
    batch = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    out = collate(batch, tok.pad_token_id)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 3, 3]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert all(t.dtype == torch.long for t in out.values())


def test_length_grouped_batches():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(1000)]
    b = length_grouped_batches(lengths, 8, seed=42, epoch=0)
    assert sorted(i for batch in b for i in batch) == list(range(1000))
    assert all(len(x) == 8 for x in b[:-1]) or sum(len(x) < 8 for x in b) == 1
    assert b == length_grouped_batches(lengths, 8, seed=42, epoch=0)
    assert b != length_grouped_batches(lengths, 8, seed=42, epoch=1) != length_grouped_batches(lengths, 8, seed=1, epoch=0)
    assert max(lengths[i] for i in b[0]) == max(lengths)  # the longest batch first: an OOM shows at step 1
    pad = lambda batches: sum(max(lengths[i] for i in x) * len(x) - sum(lengths[i] for i in x) for x in batches)
    order = list(range(1000))
    rng.shuffle(order)
    assert pad(b) < 0.2 * pad([order[i:i + 8] for i in range(0, 1000, 8)])


# ---------------------------------------------------------------- bad inputs: file, 1-based line, field, hint

def bad(tok, config):
    with pytest.raises(DataError) as e:
        load_splits(config, tok)
    assert e.value.hint, e.value
    return e.value


def test_missing_file(tok, tmp_path):
    e = bad(tok, cfg(tmp_path / "nope.jsonl"))
    assert e.field == "/data/train_file" and "nope.jsonl" in e.message
    e = bad(tok, cfg(TASKS / "train.jsonl", data={"eval_file": str(tmp_path / "held.jsonl")}))
    assert e.field == "/data/eval_file"


def test_malformed_jsonl_line(tok, tmp_path):
    lines = [json.dumps(r) for r in alpaca_rows(10)]
    lines.insert(6, '{"instruction": "x", "output": ')
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    e = bad(tok, cfg(tmp_path / "bad.jsonl"))
    assert e.line == 7 and e.file.endswith("bad.jsonl") and "bad.jsonl:7" in e.message
    # json's "Unterminated string starting at" already ends in "at": no "at at column"
    lines[6] = '{"instruction": "unterminated'
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    e = bad(tok, cfg(tmp_path / "bad.jsonl"))
    assert "(Unterminated string starting at column 17)" in e.message and "at at" not in e.message


def test_missing_column_and_empty_output(tok, tmp_path):
    rows = alpaca_rows(10)
    del rows[3]["output"]
    e = bad(tok, cfg(write_jsonl(tmp_path / "m.jsonl", rows)))
    assert (e.line, e.field) == (4, "output") and "data.columns.output" in e.hint
    rows = alpaca_rows(10)
    rows[8]["output"] = "  "
    e = bad(tok, cfg(write_jsonl(tmp_path / "e.jsonl", rows)))
    assert (e.line, e.field) == (9, "output") and "empty" in e.message
    rows = alpaca_rows(5)
    rows[2]["instruction"] = ["not", "text"]
    e = bad(tok, cfg(write_jsonl(tmp_path / "t.jsonl", rows)))
    assert (e.line, e.field) == (3, "instruction")
    e = bad(tok, cfg(write_jsonl(tmp_path / "c.jsonl", [{"prompt": "a", "completion": ""}]), "completion"))
    assert (e.line, e.field) == (1, "completion")


def test_json_array_rows_know_their_line(tok, tmp_path):
    rows = alpaca_rows(6)
    rows[4]["output"] = ""
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=1))
    e = bad(tok, cfg(tmp_path / "a.json"))
    text = (tmp_path / "a.json").read_text().splitlines()
    assert e.field == "output" and text[e.line - 1].strip() == "{" and text[e.line].strip().startswith('"instruction"')
    assert e.line == 1 + 4 * 5 + 1  # "[" then 5 objects of 5 lines each ("{", 3 fields, "}")
    (tmp_path / "b.json").write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": \n')
    assert bad(tok, cfg(tmp_path / "b.json")).line in (3, 4)


def test_csv_bad_header_and_rows(tok, tmp_path):
    (tmp_path / "h.csv").write_text("instruction,input,answer\nConvert,a b,a_b\n")
    e = bad(tok, cfg(tmp_path / "h.csv"))
    assert (e.line, e.field) == (1, "output") and "answer" in e.message and "columns" in e.hint
    (tmp_path / "d.csv").write_text("instruction,output,output\nConvert,a,b\n")
    assert bad(tok, cfg(tmp_path / "d.csv")).line == 1
    (tmp_path / "e.csv").write_text("")
    assert bad(tok, cfg(tmp_path / "e.csv")).line == 1
    (tmp_path / "r.csv").write_text('instruction,input,output\nConvert,a b,a_b\n"multi\nline",x,y\nConvert,a,b,extra\n')
    e = bad(tok, cfg(tmp_path / "r.csv"))
    assert e.line == 5 and "4 fields" in e.message


def test_other_bad_inputs(tok, tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    assert "unsupported" in bad(tok, cfg(tmp_path / "x.parquet")).message
    (tmp_path / "latin.jsonl").write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "b"}\n')
    assert bad(tok, cfg(tmp_path / "latin.jsonl")).line == 2
    (tmp_path / "list.jsonl").write_text('["a", "b"]\n')
    assert bad(tok, cfg(tmp_path / "list.jsonl")).line == 1
    (tmp_path / "empty").mkdir()
    assert bad(tok, cfg(tmp_path / "empty", "text")).field == "/data/file_extensions"
    assert bad(tok, cfg(tmp_path / "empty")).field == "/data/train_file"  # a folder for a row format
