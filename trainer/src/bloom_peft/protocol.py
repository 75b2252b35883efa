"""Trainer event protocol v1 (schemas/events.schema.json is the source of truth; src/protocol/events.ts mirrors it).

The real stdout is reserved for protocol lines: `claim_stdout()` duplicates fd 1 for the emitter and points fd 1
(and sys.stdout) at stderr, so prints from transformers, peft or user code can never corrupt the stream.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
import threading
import time
from typing import Any, TextIO

PROTOCOL_VERSION = 1
EVENT_TYPES = ("started", "progress", "eval", "checkpoint", "log", "warning", "error", "evaluation", "done")


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: send them as null (the trainer reports NaN loss through an error event)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventEmitter:
    """Writes one JSON object per line to the protocol channel; thread-safe; silent on non-zero ranks."""

    def __init__(self, stream: TextIO | None, enabled: bool = True):
        self._stream = stream
        self._enabled = enabled and stream is not None
        self._lock = threading.Lock()
        self.sinks: list[Any] = []  # extra callables(event) e.g. events.jsonl writer in tests
        # where events go once the channel is broken (the supervisor was killed): the run's events.jsonl, so the
        # stop, its checkpoint and `done` are still recorded for whoever looks at the run next
        self.fallback_path: str | os.PathLike | None = None
        self._broken = False

    def emit(self, type: str, **fields: Any) -> dict:
        event = {"v": PROTOCOL_VERSION, "type": type, "time": time.time(), **_clean(fields)}
        if self._enabled or self._broken:
            line = json.dumps(event, separators=(",", ":"), allow_nan=False)
            with self._lock:
                if not self._broken and self._stream is not None:  # not broken means enabled: there is a stream
                    try:
                        self._stream.write(line + "\n")
                        self._stream.flush()
                    except (BrokenPipeError, ValueError, OSError):
                        # parent went away; keep training until stdin EOF tells us to stop
                        self._enabled, self._broken = False, True
                if self._broken and self.fallback_path is not None:
                    try:
                        with open(self.fallback_path, "a", encoding="utf-8") as f:
                            f.write(line + "\n")
                    except OSError:
                        pass
        for sink in self.sinks:
            sink(event)
        return event

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def warning(self, message: str, code: str | None = None) -> None:
        self.emit("warning", message=message, **({"code": code} if code else {}))

    def error(self, code: str, message: str, hint: str | None = None, **where: Any) -> None:
        self.emit("error", code=code, message=message, **({"hint": hint} if hint else {}), **{k: v for k, v in where.items() if v is not None})


def reroute_dead_stderr(log_path: str | os.PathLike | None) -> None:
    """The parent that read our stderr is gone (a write raised EPIPE): point fds 1 and 2 at the run's log (or
    /dev/null), so the prints of the stop path and of every library no longer raise BrokenPipeError."""
    target = None
    if log_path is not None:
        try:
            target = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            target = None
    if target is None:
        target = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(target, fd)
    os.close(target)


def claim_stdout(enabled: bool = True) -> EventEmitter:
    """Reserve the process's real stdout for protocol lines and send every other write to stderr; `log.log`
    messages become `log` events from here on."""
    from .log import route_to

    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 now goes to stderr: C extensions and subprocesses print there
    sys.stdout = sys.stderr
    stream = io.TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8", write_through=True)
    emitter = EventEmitter(stream, enabled=enabled)
    route_to(emitter)
    return emitter
