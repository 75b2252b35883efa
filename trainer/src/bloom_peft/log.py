"""The trainer's one logging path: `log(message, level)`.

While a command streams events (train, resume, export, export-hf, evaluate: `protocol.claim_stdout` routes here, an
in-process run uses `routed_to`), a message is a `log` event on that stream, so the host shows it with the run.
Otherwise (params, preview, serve, check, library use) it is a `[bloom_peft]` line on stderr: stdout is reserved for
answers. The one deliberate raw stderr write left is stop.StopRequest's notice: its failure is how a dead parent is
detected.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol


class LogSink(Protocol):
    def log(self, message: str, level: str = "info") -> None: ...


_sink: LogSink | None = None


def log(message: str, level: str = "info") -> None:
    """level: debug, info, warning or error (the `log` event's levels)."""
    if _sink is not None:
        _sink.log(message, level)
        return
    prefix = "" if level == "info" else f"{level}: "
    print(f"[bloom_peft] {prefix}{message}", file=sys.stderr, flush=True)


def route_to(sink: LogSink | None) -> None:
    """Send every later message to `sink` (an EventEmitter), or back to stderr (None)."""
    global _sink
    _sink = sink


@contextlib.contextmanager
def routed_to(sink: LogSink) -> Iterator[None]:
    """Messages go to `sink` inside the block (an in-process run), then back to where they went before."""
    global _sink
    before, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = before
