"""The tutorial's recipe: its preset gives the tutorial's parameter counts on bloom-1b4-zh shapes (config only, meta
device), a folder written by datasets' save_to_disk trains as format instruction, and a dataset in a language the
tokenizer does not know gets a warning that names the model."""
import json
from argparse import Namespace

import pytest
from transformers import BloomConfig

from bloom_peft import params, preview
from bloom_peft.config import parse_config
from bloom_peft.data import load_examples
from bloom_peft.errors import DataError
from bloom_peft.model_loading import load_tokenizer
from train_harness import make_config, run_in_process, write_config
from trainer_data_model import ROOT, TASKS, model_name

BLOOM_1B4_ZH = dict(vocab_size=250880, hidden_size=2048, n_layer=24, n_head=16)
PRESETS = {p["id"]: p for p in json.loads((ROOT / "schemas" / "presets.json").read_text(encoding="utf-8"))["presets"]}
ZH_TASKS = ROOT / "examples" / "zh-tasks"

# the tutorial's published counts (print_trainable_parameters on Langboat/bloom-1b4-zh)
TUTORIAL_COUNTS = {
    ("bitfit", ()): 544_768,
    ("prompt_tuning", ()): 14_336,
    ("p_tuning", ()): 12_609_536,
    ("p_tuning", (("encoder_type", "LSTM"),)): 193_030_144,
    ("prefix_tuning", ()): 983_040,
    ("prefix_tuning", (("prefix_projection", True),)): 205_641_728,
}


def preset_config(preset_id: str, method: str, **method_overrides) -> dict:
    """The preset's config for one method, merged as src/training/presets.ts merges it."""
    p = PRESETS[preset_id]
    cfg = json.loads(json.dumps(p["config"]))
    extra = p["methods"][method]
    cfg["method"] = {"name": method, **extra["method"], **method_overrides}
    cfg["training"] = {**cfg.get("training", {}), **extra["training"]}
    return cfg


@pytest.fixture(scope="module")
def bloom_1b4_zh(tmp_path_factory):
    d = tmp_path_factory.mktemp("bloom-1b4-zh")
    BloomConfig(**BLOOM_1B4_ZH).save_pretrained(d)  # config.json only: no weights, no tokenizer
    return d


@pytest.mark.parametrize("method,overrides", list(TUTORIAL_COUNTS))
def test_tutorial_preset_params_equal_the_tutorials_counts(method, overrides, bloom_1b4_zh, capsys):
    config = preset_config("tutorial", method, **dict(overrides))
    config["model"]["name_or_path"] = str(bloom_1b4_zh)
    code = params.run(Namespace(config=None, json=json.dumps({"model": config["model"], "method": config["method"]})))
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["trainable"] == TUTORIAL_COUNTS[(method, overrides)]


def test_presets_are_valid_configs_for_every_method():
    from bloom_peft.config import validate_config

    for pid, preset in PRESETS.items():
        assert preset["default_method"] in preset["methods"]
        for method in preset["methods"]:
            validate_config(preset_config(pid, method))


# ---------------------------------------------------------------- save_to_disk folders

def zh_rows(n):
    return [json.loads(line) for line in (ZH_TASKS / "train.jsonl").read_text(encoding="utf-8").splitlines()][:n]


def test_save_to_disk_folders_read_as_instruction_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    tok = load_tokenizer(model_name())
    rows = zh_rows(40)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "plain"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:30]),
                          "test": datasets.Dataset.from_list(rows[30:])}).save_to_disk(str(tmp_path / "dict"))

    def cfg(train, **data):
        return parse_config({"model": {"name_or_path": model_name()}, "method": {"name": "lora"},
                             "data": {"format": "instruction", "train_file": str(train), **data}})

    def texts(examples):
        return [(e["prompt"], e["response"], e["input_ids"]) for e in examples]

    want = load_examples(cfg(jsonl), tok)
    got = load_examples(cfg(tmp_path / "plain"), tok)
    assert texts(got[0]) == texts(want[0]) and texts(got[1]) == texts(want[1])
    assert any("、" in e["response"] for e in got[0])  # Chinese rows, as written

    train, evals = load_examples(cfg(tmp_path / "dict", eval_file=str(tmp_path / "dict")), tok)
    assert [e["response"] for e in train] == [r["output"] for r in rows[:30]]  # train split for training
    assert [e["response"] for e in evals] == [r["output"] for r in rows[30:]]  # test split for eval

    datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "novalid"))
    with pytest.raises(DataError) as e:
        load_examples(cfg(tmp_path / "novalid"), tok)
    assert "no 'train' split" in str(e.value) and e.value.field == "/data/train_file"
    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).save_to_disk(str(tmp_path / "othercols"))
    with pytest.raises(DataError) as e:
        load_examples(cfg(tmp_path / "othercols"), tok)
    assert "no field 'instruction'" in str(e.value) and "row 1" in str(e.value)


def test_save_to_disk_folder_trains(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "alpaca_data_zh"
    datasets.Dataset.from_list(zh_rows(64)).save_to_disk(str(folder))
    config = make_config(model_name(), "lora", training={"max_steps": 3, "batch_size": 4},
                         data={"train_file": str(folder), "eval_split": 0.1})
    del config["data"]["eval_file"]
    run = tmp_path / "run"
    write_config(run, config)
    rc, events = run_in_process("train", run)
    assert rc == 0, events[-1]
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == 3 and all(e["loss"] > 0 for e in progress)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


# ---------------------------------------------------------------- language warnings

@pytest.fixture(scope="module")
def english_only_model(tmp_path_factory):
    """A config-only BLOOM whose byte-level BPE tokenizer was trained on English rows only: Chinese falls back to
    bytes (3 tokens a character). preview reads only the tokenizer and config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("english-only")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator((TASKS / "train.jsonl").read_text().splitlines(),
                            trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(out)
    BloomConfig(vocab_size=len(fast), hidden_size=32, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=2,
                pad_token_id=3).save_pretrained(out)
    return out


def ask_preview(capsys, model, train_file):
    config = {"model": {"name_or_path": str(model)}, "method": {"name": "lora"},
              "data": {"format": "instruction", "train_file": str(train_file)}}
    code = preview.run(Namespace(config=None, json=json.dumps(config), rows=2))
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out


def test_preview_warns_chinese_on_a_model_without_chinese(english_only_model, capsys):
    out = ask_preview(capsys, english_only_model, ZH_TASKS / "train.jsonl")
    lang = [w for w in out["warnings"] if "lacks the language" in w]
    assert len(lang) == 1, out["warnings"]
    assert str(english_only_model) in lang[0] and "Chinese" in lang[0] and "tokens per character" in lang[0]
    assert float(lang[0].split(" spends ")[1].split(" ")[0]) > 2
    # English rows on the same model: no warning
    out = ask_preview(capsys, english_only_model, TASKS / "train.jsonl")
    assert not [w for w in out["warnings"] if "lacks the language" in w]


def test_unknown_tokens_warn(tmp_path):
    """A tokenizer without byte fallback maps unseen characters to <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from bloom_peft.language import language_warnings

    vocab = {"<unk>": 0, "</s>": 1, "hello": 2, "world": 3, "é": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")
    assert language_warnings(["hello world"] * 3, fast, "m") == []
    warned = language_warnings(["hello world", "hello привет"], fast, "word-model")
    assert len(warned) == 1 and "unknown tokens" in warned[0] and "word-model" in warned[0] and "1 of the first 2" in warned[0]


def test_quick_demo_preset_is_the_measured_embedded_preset():
    """schemas/presets.json's quick demo is written from bloom_peft.presets (scripts/sync_presets.py)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_presets.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_trainer_warns_chinese_on_a_model_without_chinese(english_only_model, tmp_path):
    """The same warning as a `warning` event of the run (the model's weights: random, from its config)."""
    config = make_config(str(english_only_model), "lora", training={"max_steps": 1, "batch_size": 4, "max_length": 256},
                         data={"train_file": str(ZH_TASKS / "train.jsonl"), "eval_file": str(ZH_TASKS / "heldout.jsonl")})
    config["model"]["config_only"] = True
    run = tmp_path / "run"
    write_config(run, config)
    rc, events = run_in_process("train", run)
    assert rc == 0, [e for e in events if e["type"] == "error"]
    warned = [e["message"] for e in events if e["type"] == "warning" and "lacks the language" in e["message"]]
    assert len(warned) == 1 and str(english_only_model) in warned[0]
