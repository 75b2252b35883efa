"""The shared vectors in schemas/vectors/ pass or fail the same way here as in the TypeScript suite."""
import json

import jsonschema
import pytest

from bloom_peft.config import config_issues, parse_config, parse_template, validate_config
from bloom_peft.errors import ConfigError
from bloom_peft.paths import EVENTS_SCHEMA, SCHEMAS_DIR
from bloom_peft.protocol import EventEmitter

CONFIGS = json.loads((SCHEMAS_DIR / "vectors" / "configs.json").read_text())
EVENTS = json.loads((SCHEMAS_DIR / "vectors" / "events.json").read_text())
EVENT_VALIDATOR = jsonschema.Draft7Validator(json.loads(EVENTS_SCHEMA.read_text()))


@pytest.mark.parametrize("vector", CONFIGS["valid"], ids=lambda v: v["name"])
def test_valid_config_vectors(vector):
    assert config_issues(vector["config"]) == []
    parse_config(vector["config"])  # the typed config takes every valid config


@pytest.mark.parametrize("vector", CONFIGS["invalid"], ids=lambda v: v["name"])
def test_invalid_config_vectors_name_the_field(vector):
    issues = config_issues(vector["config"])
    assert vector["error_path"] in [p for p, _ in issues], issues
    with pytest.raises(ConfigError) as e:
        validate_config(vector["config"], "config.json")
    assert e.value.field is not None and e.value.message
    with pytest.raises(ConfigError):
        parse_config(vector["config"], "config.json")


@pytest.mark.parametrize("name", list(EVENTS["transcripts"]))
def test_event_transcripts_valid(name):
    for event in EVENTS["transcripts"][name]:
        assert not list(EVENT_VALIDATOR.iter_errors(event)), event


def test_invalid_events_rejected():
    for event in EVENTS["invalid"]:
        assert list(EVENT_VALIDATOR.iter_errors(event)), event


def test_emitter_output_matches_schema(capsys):
    import io
    buf = io.StringIO()
    em = EventEmitter(buf)
    em.emit("progress", step=1, total_steps=2, epoch=0.5, loss=float("nan"), lr=1e-3)
    em.error("nan_loss", "loss is nan at step 1", hint="lower the lr", step=1)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines[0]["loss"] is None  # NaN cannot travel as JSON
    for e in lines:
        assert not list(EVENT_VALIDATOR.iter_errors(e)), e


# The answers of params, preview and check: what the trainer prints is valid against the schema the host's types
# are generated from (src/protocol/generated/), on the embedded model and a real data file.
def _answer_validator(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text()))


def _answer(capsys, module, **args) -> dict:
    from argparse import Namespace

    assert module.run(Namespace(config=None, **{k: json.dumps(v) if k == "json" else v for k, v in args.items()})) == 0
    return json.loads(capsys.readouterr().out)


def test_params_answer_matches_schema(capsys):
    from bloom_peft import params
    from trainer_data_model import model_name

    answer = _answer(capsys, params, json={"model": {"name_or_path": model_name()}, "method": {"name": "lora"}})
    assert not list(_answer_validator("params-answer").iter_errors(answer)), answer


def test_preview_answer_matches_schema(capsys):
    from bloom_peft import preview
    from trainer_data_model import ROOT, TASKS, model_name

    for fmt, train_file in (("instruction", TASKS / "train.jsonl"), ("text", ROOT / "examples" / "code-corpus")):
        config = {"model": {"name_or_path": model_name()}, "method": {"name": "lora"},
                  "data": {"format": fmt, "train_file": str(train_file)}, "training": {"max_length": 40}}
        answer = _answer(capsys, preview, json=config, rows=2)
        assert answer["rows"], answer
        assert not list(_answer_validator("preview-answer").iter_errors(answer)), answer


def test_check_report_matches_schema(capsys):
    from bloom_peft import check

    assert check.run() == 0
    report = json.loads(capsys.readouterr().out)
    assert not list(_answer_validator("check-report").iter_errors(report)), report


TEMPLATES = json.loads((SCHEMAS_DIR / "vectors" / "templates.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("vector", TEMPLATES["vectors"], ids=lambda v: v["name"])
def test_template_vectors(vector):
    """The same vectors pass in test/unit/protocol-template.test.ts (src/protocol/template.ts)."""
    from bloom_peft.data import render_example, render_prompt

    f, template = vector["fields"], parse_template(vector["template"])
    assert render_prompt(template, f["instruction"], f.get("input", ""), f.get("prompt")) == vector["expected"]
    assert render_example(vector["row"], template)[0] == vector["expected"]


def test_error_codes_are_the_schemas():
    """Every error code the trainer reports is one of errors.ERROR_CODES, which the schemas list (`internal`, never
    `internal_error`): the codes in TrainerError(...)/super().__init__(...)/emitter.error(...) calls, read from the source."""
    import ast
    import re

    from bloom_peft.errors import ERROR_CODES
    from bloom_peft.paths import PACKAGE_DIR

    for name, path in (("events", ("definitions", "error", "properties", "code")),
                       ("queries", ("definitions", "error", "properties", "code"))):
        node = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
        for key in path:
            node = node[key]
        assert set(re.findall(r"[a-z][a-z_]+[a-z]", node["description"].split(":", 1)[1])) == set(ERROR_CODES), name
    used = set()
    for source in PACKAGE_DIR.rglob("*.py"):
        for call in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)):
                continue
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("TrainerError", "__init__", "error") and isinstance(call.args[0].value, str):
                used.add((call.args[0].value, f"{source.name}:{call.lineno}"))
    assert used and not [u for u in used if u[0] not in ERROR_CODES], sorted(used)
