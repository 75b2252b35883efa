"""`python -m bloom_peft serve`: answers as the one-shot commands do, errors included, one JSON line per request."""
import json
import os
import subprocess
import sys

import jsonschema

from bloom_peft.paths import PROJECT_ROOT

ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "trainer" / "src"), "TOKENIZERS_PARALLELISM": "false"}
LORA = {"model": {"name_or_path": "embedded"}, "method": {"name": "lora"}}
DATA = {"format": "instruction", "train_file": str(PROJECT_ROOT / "examples/code-tasks/train.jsonl")}


def one_shot(*args: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "bloom_peft", *args], capture_output=True, text=True, env=ENV)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_serve_answers_like_the_one_shot_commands():
    requests = [
        {"id": 1, "command": "params", "config": LORA},
        {"id": 2, "command": "params", "config": {**LORA, "method": {"name": "nope"}}},
        "not json",
        {"id": 3, "command": "preview", "config": {**LORA, "data": DATA}, "rows": 1},
        {"id": 4, "command": "preview", "config": {**LORA, "data": {**DATA, "train_file": "/nonexistent.jsonl"}}},
        {"id": 5, "command": "export"},
        {"id": 6, "command": "preview", "config": {**LORA, "data": DATA}, "rows": -1},
        {"id": 7, "command": "check"},
    ]
    stdin = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    p = subprocess.run([sys.executable, "-m", "bloom_peft", "serve"], input=stdin, capture_output=True, text=True,
                       env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    replies = [json.loads(line) for line in p.stdout.splitlines()]
    schema = json.loads((PROJECT_ROOT / "schemas/queries.schema.json").read_text())
    for reply in replies:
        jsonschema.validate(reply, {**schema, "oneOf": [{"$ref": "#/definitions/response"}]})
    by_id = {r["id"]: r for r in replies}
    assert [r["id"] for r in replies] == [1, 2, None, 3, 4, 5, 6, 7]  # one answer per line, in order
    assert by_id[1]["result"] == one_shot("params", "--json", json.dumps(LORA))
    assert {"error": by_id[2]["error"]} == one_shot("params", "--json", json.dumps(requests[1]["config"]))
    assert by_id[2]["error"]["field"] == "/method/name"
    assert by_id[None]["error"]["code"] == "bad_request"
    assert by_id[3]["result"] == one_shot("preview", "--json", json.dumps(requests[3]["config"]), "--rows", "1")
    missing = one_shot("preview", "--json", json.dumps(requests[4]["config"]))
    assert {"error": by_id[4]["error"]} == missing and "nonexistent" in missing["error"]["message"]
    assert by_id[5]["error"]["field"] == "command" and by_id[6]["error"]["field"] == "rows"
    assert by_id[7]["result"]["packages"]["torch"]
