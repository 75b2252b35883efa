"""Stop requests for train/resume: a `{"type":"stop"}` line or EOF on stdin (the owner went away), SIGTERM or SIGINT.
The loop polls `requested` between steps; inside `interruptible()` a request abandons the work in flight
(docs/trainer.md, Stop)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .log import log
from .protocol import reroute_dead_stderr


class StepAbandoned(Exception):
    """A stop arrived during a step's forward/backward: that step is dropped (no weight, optimizer or scheduler state
    had changed yet) and the run stops at its last complete step."""


class StopRequest:
    """Set by a `{"type":"stop"}` line or EOF on stdin, SIGTERM or SIGINT. Between steps the loop polls it. Inside
    `interruptible()` (a single-process step's forward/backward, an evaluation) a request abandons the work at once:
    the main thread raises StepAbandoned, from the signal handler itself or, for a request read from stdin, from its
    SIGUSR1 handler (`install`); `check()` does the same where the model's blocks run, backward included.
    A second signal ends the process at once (the host escalates to killing the tree anyway)."""

    def __init__(self):
        self.event = threading.Event()
        self.reason: str | None = None
        self.on_force = lambda signum: os._exit(128 + signum)
        self.log_path: Path | None = None  # where stderr goes if the parent reading it is gone
        self._interruptible = False
        self._main_thread: int | None = None  # set by install(): the thread a request from stdin interrupts

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: str) -> None:
        if not self.event.is_set():
            # the flag first: when the parent died, the print below is the first write to a dead pipe
            self.reason = reason
            self.event.set()
            message = f"[bloom_peft] stop requested ({reason})"
            try:
                print(message, file=sys.stderr, flush=True)
            except (BrokenPipeError, OSError, ValueError):
                reroute_dead_stderr(self.log_path)
                with contextlib.suppress(Exception):
                    print(message + " (the supervisor is gone; output continues here)", file=sys.stderr, flush=True)
        if not self._interruptible:
            return
        if threading.get_ident() == threading.main_thread().ident:  # a signal handler, running in the main thread
            self.check()
        elif self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGUSR1)  # its handler runs check() there

    def check(self) -> None:
        """Raise StepAbandoned when a stop is pending inside `interruptible()` (any thread: the autograd engine runs
        backward hooks on its own threads on a GPU)."""
        if self._interruptible and self.event.is_set():
            # disarmed before raising: should this fire inside interruptible()'s own exit, nothing after the
            # abandon (the stop's checkpoint) may be cut short again
            self._interruptible = False
            raise StepAbandoned

    @contextlib.contextmanager
    def interruptible(self, enabled: bool = True):
        """Work a stop may cut short: nothing in it changes what a checkpoint saves. Off under DDP (the other
        processes would wait in a collective for the one that left)."""
        if not enabled:
            yield
            return
        self._interruptible = True
        try:
            self.check()  # a request that came just before
            yield
        finally:
            self._interruptible = False

    def install(self, watch_stdin: bool = True) -> None:
        def handler(signum, _frame):
            if self.event.is_set():
                self.on_force(signum)
            else:
                self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        if os.environ.get("BLOOM_PEFT_LAUNCHED") == "1":
            # a worker of launch.py: a terminal Ctrl-C reaches the whole group, and torchrun then signals us once
            # more, which would count as "second signal: exit now"; the supervisor's pipe close is the stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, handler)
        if hasattr(signal, "pthread_kill"):  # POSIX; elsewhere a request from stdin waits for the next check()
            signal.signal(signal.SIGUSR1, lambda _signum, _frame: self.check())
            self._main_thread = threading.main_thread().ident
        if watch_stdin and os.environ.get("BLOOM_PEFT_IGNORE_STDIN") != "1" and sys.stdin is not None:
            threading.Thread(target=self._read_stdin, name="stdin-control", daemon=True).start()

    def _read_stdin(self) -> None:
        # os.read on the fd, not sys.stdin: a daemon thread blocked inside a BufferedReader holds its lock, and
        # the interpreter aborts at exit when it cannot take that lock ("could not acquire lock ... daemon threads")
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError, AttributeError):
            return
        pending = b""
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    self._control_line(raw)
                pending = pending[-65536:]  # a control line is short; never let junk grow without bound
        except OSError:
            pass
        if pending.strip():
            self._control_line(pending)
        self.request("stdin closed")  # the parent went away (or closed the pipe to ask for a stop)

    def _control_line(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") == "stop":
            self.request("stop message")
        elif raw.strip():
            log(f"ignoring control line {raw[:200]!r}", "warning")


def add_stop_checks(model, stop: StopRequest) -> None:
    """stop.check() as each transformer block runs, forward and backward: a stop cuts into a long step there (the
    backward pass is one call into the autograd engine, which a signal handler cannot enter otherwise)."""
    import torch

    def on_backward(_grad) -> None:
        stop.check()

    def on_forward(_module, _inputs, output) -> None:
        stop.check()
        hidden = output[0] if isinstance(output, tuple) else output
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(on_backward)

    for blocks in (m for m in model.modules() if isinstance(m, torch.nn.ModuleList)):
        for block in blocks:
            block.register_forward_hook(on_forward)
