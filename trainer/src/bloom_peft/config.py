"""The training config, parsed once at each process's edge (schemas/training-config.schema.json).

`parse_config` is the one function that validates a config and fills its defaults: the JSON Schema checks it, the
schema's defaults (and the method's default learning rate, its `x-default-learning-rate`) are filled in, and the
result is a frozen `Config` of typed sections, one dataclass per method's option set (as peft's LoraConfig,
PromptTuningConfig...). Everything inside the trainer (train, params, preview, evaluation, export) takes that object;
the schema stays the one place defaults live (the dataclasses declare none, test_config.py checks they match it).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import jsonschema

from .errors import ConfigError
from .paths import CONFIG_SCHEMA

_SCHEMA = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
_VALIDATOR = jsonschema.Draft7Validator(_SCHEMA)
SCHEMA_HINT = "Fix the field named above; schemas/training-config.schema.json lists every option."
METHODS: tuple[str, ...] = tuple(_SCHEMA["properties"]["method"]["properties"]["name"]["enum"])  # the schema's order
QUANTIZATIONS: tuple[str, ...] = tuple(_SCHEMA["properties"]["export"]["properties"]["quantize"]["enum"])
DEFAULT_LEARNING_RATES: dict[str, float] = {
    name: _SCHEMA["definitions"][f"method_{name}"]["x-default-learning-rate"] for name in METHODS}


# ---------------------------------------------------------------------------------------------------- the sections

class _Section:
    def as_dict(self) -> dict:
        """The JSON form (absent optional fields left out), as echoed in `started`."""
        out: dict = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = value.as_dict() if isinstance(value, _Section) else \
                list(value) if isinstance(value, tuple) else copy.deepcopy(value)
        return out


@dataclass(frozen=True)
class ModelSection(_Section):
    name_or_path: str
    revision: str | None
    config_only: bool


@dataclass(frozen=True)
class MethodOptions(_Section):
    """A method and its options; each method's subclass holds exactly its schema definition's fields."""

    name: ClassVar[str]

    def as_dict(self) -> dict:
        return {"name": self.name, **super().as_dict()}


@dataclass(frozen=True)
class FullOptions(MethodOptions):
    name: ClassVar[str] = "full"


@dataclass(frozen=True)
class BitfitOptions(MethodOptions):
    name: ClassVar[str] = "bitfit"


@dataclass(frozen=True)
class PromptTuningOptions(MethodOptions):
    name: ClassVar[str] = "prompt_tuning"
    num_virtual_tokens: int
    init: str
    init_text: str | None


@dataclass(frozen=True)
class PTuningOptions(MethodOptions):
    name: ClassVar[str] = "p_tuning"
    num_virtual_tokens: int
    encoder_type: str
    encoder_hidden_size: int | None  # None: the model's hidden size (peft's default)
    encoder_num_layers: int
    encoder_dropout: float


@dataclass(frozen=True)
class PrefixTuningOptions(MethodOptions):
    name: ClassVar[str] = "prefix_tuning"
    num_virtual_tokens: int
    prefix_projection: bool
    encoder_hidden_size: int | None


@dataclass(frozen=True)
class LoraOptions(MethodOptions):
    name: ClassVar[str] = "lora"
    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]


@dataclass(frozen=True)
class IA3Options(MethodOptions):
    name: ClassVar[str] = "ia3"
    target_modules: tuple[str, ...]
    feedforward_modules: tuple[str, ...]


METHOD_OPTIONS: dict[str, type[MethodOptions]] = {cls.name: cls for cls in (
    FullOptions, BitfitOptions, PromptTuningOptions, PTuningOptions, PrefixTuningOptions, LoraOptions, IA3Options)}


@dataclass(frozen=True)
class DataSection(_Section):
    format: str
    train_file: str | None
    eval_file: str | None
    eval_split: float
    hub_id: str | None
    hub_split: str
    columns: dict[str, str]  # role (instruction, input, output, prompt, completion) -> the file's column
    file_extensions: tuple[str, ...]
    block_size: int | None  # None: training.max_length
    max_samples: int | None


@dataclass(frozen=True)
class TemplateSection(_Section):
    prompt: str
    response_prefix: str
    add_eos: bool
    mask_prompt: bool


@dataclass(frozen=True)
class TrainingSection(_Section):
    epochs: float
    max_steps: int | None  # None: epochs decide
    batch_size: int
    grad_accum: int
    learning_rate: float  # always set: absent in the file means the method's default
    scheduler: str
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    max_length: int
    eval_every: int
    save_every: int
    keep_checkpoints: int
    log_every: int
    seed: int
    precision: str
    device: str
    num_gpus: int
    group_by_length: bool
    gradient_checkpointing: bool
    early_stopping_patience: int
    num_workers: int


@dataclass(frozen=True)
class ExportSection(_Section):
    onnx: bool
    quantize: str
    fp16: bool


@dataclass(frozen=True)
class Config(_Section):
    """A validated config with every default filled in. `data` is None only for `params` (counts need no data)."""

    version: int
    run_name: str | None
    model: ModelSection
    method: MethodOptions
    data: DataSection | None
    template: TemplateSection
    training: TrainingSection
    export: ExportSection
    source: str | None = field(default=None, compare=False)  # the file it came from, for error messages

    def as_dict(self) -> dict:
        out = super().as_dict()
        out.pop("source", None)
        return out


# ---------------------------------------------------------------------------------------------------- validation

def config_issues(config: Any) -> list[tuple[str, str]]:
    """Every schema violation as (JSON pointer of the field, message); [] when valid."""
    issues = []
    for error in sorted(_VALIDATOR.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        # an if/then failure hides the real cause in the sub-errors of the branch it applied
        leaves = [error]
        while leaves and leaves[0].context:
            leaves = leaves[0].context
        for leaf in leaves:
            pointer = "/" + "/".join(map(str, leaf.absolute_path)) if leaf.absolute_path else ""
            issues.append((pointer, f"{pointer or '(config)'}: {leaf.message}"))
    return issues


def validate_config(config: Any, source: str | None = None) -> dict:
    """The config unchanged when the schema accepts it, else ConfigError naming the first field (and how many more)."""
    issues = config_issues(config)
    if issues:
        pointer, message = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise ConfigError(message + more, field=pointer, file=source, hint=SCHEMA_HINT)
    return config


def _check_export(export: dict, source: str | None) -> None:
    """A quantized fp16 export (export.check_options): refused with the config, not after the training it ends."""
    from .export import check_options

    try:
        check_options(export["quantize"], export["fp16"])
    except ConfigError as e:
        raise ConfigError(e.message, field=e.field, file=source, hint=e.hint) from None


def _check_semantics(method: MethodOptions, source: str | None) -> None:
    """What the schema cannot say."""
    if isinstance(method, IA3Options) and not set(method.feedforward_modules) <= set(method.target_modules):
        raise ConfigError(f"IA3 feedforward_modules {sorted(set(method.feedforward_modules) - set(method.target_modules))}"
                          " are not in target_modules", field="/method/feedforward_modules", file=source,
                          hint="Every feed-forward module must also be a target module (default: mlp.dense_4h_to_h in both).")


# ---------------------------------------------------------------------------------------------------- parsing

# `params` counts need only the model and the method; the dashboard asks before a dataset is chosen
_NO_DATA = {"format": "text", "train_file": "."}


def parse_config(raw: Any, source: str | None = None, *, need_data: bool = True) -> Config:
    """The one place a config is validated and defaulted: a typed Config, or ConfigError naming the field."""
    if not need_data and isinstance(raw, dict) and "data" not in raw:
        validate_config({**raw, "data": _NO_DATA}, source)
    else:
        validate_config(raw, source)
    filled = _with_defaults(raw)
    filled["training"].setdefault("learning_rate", DEFAULT_LEARNING_RATES[filled["method"]["name"]])
    method = _method(filled["method"])
    _check_semantics(method, source)
    _check_export(filled["export"], source)
    return Config(
        version=filled["version"], run_name=filled.get("run_name"), model=_build(ModelSection, filled["model"]),
        method=method, data=_build(DataSection, filled["data"]) if "data" in filled else None,
        template=_build(TemplateSection, filled["template"]), training=_build(TrainingSection, filled["training"]),
        export=_build(ExportSection, filled["export"]), source=source)


def load_config(path: str | Path, *, need_data: bool = True,
                hint: str = "Pass --config FILE or a run dir with config.json.") -> Config:
    """A config file, parsed (parse_config); `hint` says what to do when the file is missing."""
    return parse_config(read_config_file(path, hint), str(path), need_data=need_data)


def read_config_file(path: str | Path, hint: str) -> Any:
    """The JSON in a config file, unvalidated; ConfigError when missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", file=str(path), hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}", file=str(path)) from None


def parse_section(name: str, raw: Any) -> Any:
    """One section (`model`, `method`, `template`...) alone, validated and defaulted as parse_config does it:
    for code and tests that hold only that part (an adapter's method, a base model to load)."""
    schema = {**_SCHEMA["properties"][name], "definitions": _SCHEMA["definitions"]}
    for error in sorted(jsonschema.Draft7Validator(schema).iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        while error.context:
            error = error.context[0]
        pointer = "/" + "/".join([name, *map(str, error.absolute_path)])
        raise ConfigError(f"{pointer}: {error.message}", field=pointer, hint=SCHEMA_HINT)
    filled = _with_defaults({name: raw})[name]
    if name == "method":
        method = _method(filled)
        _check_semantics(method, None)
        return method
    return _build(_SECTIONS[name], filled)


def parse_method(raw: dict) -> MethodOptions:
    return parse_section("method", raw)


def parse_model(name_or_path: str, **options: Any) -> ModelSection:
    return parse_section("model", {"name_or_path": name_or_path, **options})


def parse_template(raw: dict | None = None) -> TemplateSection:
    return parse_section("template", raw or {})


_SECTIONS: dict[str, type] = {"model": ModelSection, "data": DataSection, "template": TemplateSection,
                              "training": TrainingSection, "export": ExportSection}


def _build(cls: type, values: dict) -> Any:
    """The dataclass of a filled section: lists become tuples (frozen), absent optional fields None."""
    return cls(**{f.name: tuple(values[f.name]) if isinstance(values.get(f.name), list) else values.get(f.name)
                  for f in fields(cls) if f.init and f.name != "source"})


def _method(values: dict) -> MethodOptions:
    return _build(METHOD_OPTIONS[values["name"]], {k: v for k, v in values.items() if k != "name"})


def _with_defaults(config: dict) -> dict:
    """A copy of a valid config with every schema default filled in: walks properties (creating absent sub-objects
    such as training/template/export), $refs and the if/then branches that apply (method-specific options)."""

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            node: Any = _SCHEMA
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def fill(value: dict, schema: dict) -> None:
        schema = resolve(schema)
        for key, sub in schema.get("properties", {}).items():
            sub = resolve(sub)
            if key not in value:
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                elif sub.get("type") == "object" and "properties" in sub and key not in schema.get("required", []):
                    value[key] = {}
            if isinstance(value.get(key), dict):
                fill(value[key], sub)
        for branch in schema.get("allOf", []):
            if "if" in branch and jsonschema.Draft7Validator(branch["if"]).is_valid(value) and "then" in branch:
                fill(value, branch["then"])

    out = copy.deepcopy(config)
    fill(out, _SCHEMA)
    return out


# ---------------------------------------------------------------------------------------------------- advice

METHOD_LABELS = {"full": "full fine-tuning", "bitfit": "BitFit", "prompt_tuning": "prompt tuning",
                 "p_tuning": "P-tuning", "prefix_tuning": "prefix tuning", "lora": "LoRA", "ia3": "IA3"}
DIVERGING_LR_FACTOR = 100  # this many times the method's default learning rate: AdamW steps that size blow up


def learning_rate_warnings(config: Config) -> list[str]:
    """A learning rate so far above the method's default that the run will likely diverge (legal, so a warning:
    shown by `preview` and at the start of training; divergence itself then stops the run)."""
    name, lr = config.method.name, config.training.learning_rate
    default = DEFAULT_LEARNING_RATES[name]
    if lr < DIVERGING_LR_FACTOR * default:
        return []
    return [f"lr {lr:g} with {METHOD_LABELS[name]} will likely diverge (the default for it is {default:g}; "
            f"training.learning_rate)"]
