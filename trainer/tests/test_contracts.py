"""The shared vectors in schemas/vectors/ pass or fail the same way here as in the TypeScript suite."""
import json

import jsonschema
import pytest

from bloom_peft.config import config_issues, validate_config
from bloom_peft.errors import ConfigError
from bloom_peft.paths import EVENTS_SCHEMA, SCHEMAS_DIR
from bloom_peft.protocol import EventEmitter

CONFIGS = json.loads((SCHEMAS_DIR / "vectors" / "configs.json").read_text())
EVENTS = json.loads((SCHEMAS_DIR / "vectors" / "events.json").read_text())
EVENT_VALIDATOR = jsonschema.Draft7Validator(json.loads(EVENTS_SCHEMA.read_text()))


@pytest.mark.parametrize("vector", CONFIGS["valid"], ids=lambda v: v["name"])
def test_valid_config_vectors(vector):
    assert config_issues(vector["config"]) == []


@pytest.mark.parametrize("vector", CONFIGS["invalid"], ids=lambda v: v["name"])
def test_invalid_config_vectors_name_the_field(vector):
    issues = config_issues(vector["config"])
    assert vector["error_path"] in [p for p, _ in issues], issues
    with pytest.raises(ConfigError) as e:
        validate_config(vector["config"], "config.json")
    assert e.value.field is not None and e.value.message


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
    lines = [json.loads(l) for l in buf.getvalue().splitlines()]
    assert lines[0]["loss"] is None  # NaN cannot travel as JSON
    for e in lines:
        assert not list(EVENT_VALIDATOR.iter_errors(e)), e
