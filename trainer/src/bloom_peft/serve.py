"""`serve`: a resident process answering the host's queries (params, preview, check) as JSON lines.

One request per line on stdin, one answer per line on stdout, in order (schemas/queries.schema.json):
  {"id": 1, "command": "params", "config": {...}}
  {"id": 2, "command": "preview", "config": {...}, "rows": 3}
  {"id": 3, "command": "check"}
->{"id": 1, "result": {...the command's answer...}}  or  {"id": 1, "error": {"code", "message", "hint", "field", ...}}

Answers and errors are those of the one-shot commands (`python -m bloom_peft params --json ...`), computed by the same
functions; what the process keeps is only the imported libraries (torch and transformers: seconds per start). It
reads nothing into memory between requests, so each answer reflects the files as they are. The process ends at the
end of stdin.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

from .errors import BadRequest, as_trainer_error

COMMANDS = ("params", "preview", "check")


def answer(request) -> dict:
    """The answer line (a dict) for one parsed request."""
    from .params import print_result

    rid = request.get("id") if isinstance(request, dict) else None
    if not isinstance(request, dict) or request.get("command") not in COMMANDS:
        got = request.get("command") if isinstance(request, dict) else type(request).__name__
        return {"id": rid, "error": BadRequest(f"unknown query {json.dumps(got)}", "command",
                                               f"One of: {', '.join(COMMANDS)}.").event_fields()}
    command = request["command"]
    if command == "check":
        from .check import report

        return {"id": rid, "result": report()}
    config = request.get("config")
    if not isinstance(config, dict):
        return {"id": rid, "error": BadRequest(f"{command}: 'config' must be a JSON object", "config").event_fields()}
    from .config import parse_config

    if command == "params":
        from .params import count_for_config

        def compute():
            return count_for_config(parse_config(config, need_data=False))
    else:
        from .preview import preview

        rows = request.get("rows", 3)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            return {"id": rid, "error": BadRequest(f"preview: 'rows' must be an integer >= 0 (got {json.dumps(rows)})",
                                                   "rows").event_fields()}

        def compute():
            return preview(parse_config(config), rows)
    # the one-shot commands' own error handling, so errors read exactly as theirs
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_result(compute)
    result = json.loads(buf.getvalue())
    if isinstance(result, dict) and "error" in result and len(result) == 1:
        return {"id": rid, "error": result["error"]}
    return {"id": rid, "result": result}


def serve(stdin, stdout) -> int:
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            reply = {"id": None, "error": BadRequest(f"not a JSON line: {e.msg}").event_fields()}
        else:
            try:
                reply = answer(request)
            except Exception as e:  # noqa: BLE001 - a bug must not end the service: answer it, traceback to stderr
                import traceback

                traceback.print_exc()
                reply = {"id": request.get("id") if isinstance(request, dict) else None,
                         "error": as_trainer_error(e).event_fields()}
        stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
        stdout.flush()
    return 0


def run(args=None) -> int:
    protocol = sys.stdout
    sys.stdout = sys.stderr  # library chatter can never corrupt an answer line
    # import the heavy libraries now, while the host waits for its first answer anyway; without them, `check` still
    # answers (it reports what is missing) and params/preview answer with the environment error
    with contextlib.suppress(ImportError):
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from . import methods, model_loading, params, preview  # noqa: F401
    return serve(sys.stdin, protocol)
