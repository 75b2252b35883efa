"""The one logging path (log.py): stderr when no run streams events, the run's `log` events when one does."""
import io
import json

from bloom_peft.log import log, routed_to
from bloom_peft.protocol import EventEmitter


def test_log_goes_to_stderr_without_a_live_run(capsys):
    log("hello")
    log("careful", "warning")
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is reserved for answers
    assert captured.err.splitlines() == ["[bloom_peft] hello", "[bloom_peft] warning: careful"]


def test_log_is_a_log_event_while_a_run_streams(capsys):
    stream = io.StringIO()
    with routed_to(EventEmitter(stream)):
        log("step 1", "info")
    log("after")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["type"], e["level"], e["message"]) for e in events] == [("log", "info", "step 1")]
    assert capsys.readouterr().err == "[bloom_peft] after\n"
