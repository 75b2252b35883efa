"""The typed config (config.py): one parse fills every schema default, the dataclasses hold exactly the schema's
fields, and bad values are refused with the field named."""
import dataclasses
import json

import pytest

from bloom_peft.config import (
    DEFAULT_LEARNING_RATES,
    METHOD_OPTIONS,
    METHODS,
    Config,
    DataSection,
    ExportSection,
    LoraOptions,
    ModelSection,
    PromptTuningOptions,
    TemplateSection,
    TrainingSection,
    config_issues,
    load_config,
    parse_config,
    parse_method,
    parse_model,
    parse_template,
)
from bloom_peft.errors import ConfigError
from bloom_peft.paths import CONFIG_SCHEMA

SCHEMA = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
MINIMAL = {"model": {"name_or_path": "embedded"}, "method": {"name": "lora"},
           "data": {"format": "instruction", "train_file": "train.jsonl"}}


def field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name != "source"}


@pytest.mark.parametrize("name, cls", [("model", ModelSection), ("data", DataSection), ("template", TemplateSection),
                                       ("training", TrainingSection), ("export", ExportSection)])
def test_sections_hold_exactly_the_schemas_fields(name, cls):
    assert field_names(cls) == set(SCHEMA["properties"][name]["properties"])
    # defaults live in the schema only: a dataclass default could drift from it
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls))


@pytest.mark.parametrize("method", METHODS)
def test_one_options_class_per_method_with_its_definitions_fields(method):
    cls = METHOD_OPTIONS[method]
    assert cls.name == method
    assert field_names(cls) == set(SCHEMA["definitions"][f"method_{method}"]["properties"]) - {"name"}
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls))


def test_top_level_fields_match_the_schema():
    assert field_names(Config) == set(SCHEMA["properties"])


def test_parse_fills_every_default_once():
    config = parse_config(MINIMAL)
    assert isinstance(config.method, LoraOptions)
    assert (config.method.r, config.method.alpha, config.method.target_modules) == (8, 16, ("query_key_value",))
    assert config.training.learning_rate == DEFAULT_LEARNING_RATES["lora"]
    assert config.training.max_steps is None and config.data is not None and config.data.columns["output"] == "output"
    assert config.template.prompt == "Human: {instruction}\n{input}" and config.export.onnx is True
    echoed = config.as_dict()  # what `started` echoes: a valid config again, every default in it
    assert config_issues(echoed) == [] and parse_config(echoed) == config
    assert echoed["training"]["seed"] == 42 and "max_steps" not in echoed and echoed["method"]["name"] == "lora"


def test_given_values_win_and_the_learning_rate_defaults_per_method():
    config = parse_config({**MINIMAL, "method": {"name": "prompt_tuning", "init": "text", "init_text": "Task:"},
                           "training": {"max_steps": 5, "batch_size": 2}})
    assert isinstance(config.method, PromptTuningOptions) and config.method.init_text == "Task:"
    assert (config.training.max_steps, config.training.batch_size) == (5, 2)
    assert config.training.learning_rate == DEFAULT_LEARNING_RATES["prompt_tuning"]
    assert parse_config({**MINIMAL, "training": {"learning_rate": 0.5}}).training.learning_rate == 0.5


def test_the_config_is_frozen():
    config = parse_config(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.seed = 1  # type: ignore[misc]


def test_params_needs_no_data_but_the_rest_is_still_checked():
    raw = {"model": {"name_or_path": "embedded"}, "method": {"name": "ia3"}}
    assert parse_config(raw, need_data=False).data is None
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert "data" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_config({**raw, "training": {"batch_size": 0}}, need_data=False)
    assert e.value.field == "/training/batch_size"


def test_bad_values_name_the_field_and_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**MINIMAL, "method": {"name": "lora", "r": 0}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.field == "/method/r" and e.value.file == str(path) and "schemas/" in e.value.hint
    path.write_text("{")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "not valid JSON" in e.value.message
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "missing.json")
    assert "not found" in e.value.message and e.value.hint
    with pytest.raises(ConfigError) as e:  # what the schema cannot say: IA3's feed-forward modules are targets too
        parse_config({**MINIMAL, "method": {"name": "ia3", "target_modules": ["query_key_value"]}})
    assert e.value.field == "/method/feedforward_modules"


def test_one_section_alone():
    assert parse_model("embedded") == ModelSection(name_or_path="embedded", revision=None, config_only=False)
    assert parse_template() == parse_config(MINIMAL).template
    assert parse_method({"name": "lora"}) == parse_config(MINIMAL).method
    with pytest.raises(ConfigError) as e:
        parse_method({"name": "lora", "rank": 4})
    assert e.value.field == "/method" and "rank" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_method({"name": "lora", "dropout": 2})
    assert e.value.field == "/method/dropout"
