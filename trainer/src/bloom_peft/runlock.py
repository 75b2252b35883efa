"""One process per run directory: `train`, `resume` and `export --run-dir` hold `RUN_DIR/run.lock` while they run.

The exclusion is an OS lock on the file (fcntl.flock / msvcrt.locking): the kernel releases it when the holder dies,
so a lock left by a killed process is never "held" (stale locks need no clean-up and no guessing). The file's
content names the holder (pid, its start-time token, command, parent pid) so a refusal can say who:
"run ... is in use by pid N". The host reads the same content (src/training/runStore.ts) and checks the token.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import TrainerError

LOCK_FILE = "run.lock"


class RunInUse(TrainerError):
    def __init__(self, run_dir: Path, holder: dict):
        pid = holder.get("pid", "?")
        what = holder.get("command", "another command")
        since = time.strftime("%H:%M:%S", time.localtime(holder["time"])) if isinstance(holder.get("time"), (int, float)) else "?"
        super().__init__("run_in_use", f"run {run_dir} is in use by pid {pid} ({what}, since {since})",
                         hint="Wait for it to finish or stop it (`bloom-peft stop RUN` or Stop in VS Code); "
                              "one process at a time may train, resume or export a run.")
        self.holder = holder


def process_token(pid: int) -> str | None:
    """The same token as the host's processes.processStartToken: the start time in clock ticks since boot."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split(" ")
    return f"linux:{fields[19]}"


class RunLock:
    """Held from acquire() until release() or the process ends."""

    def __init__(self, run_dir: Path, command: str):
        self.path = Path(run_dir) / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise RunInUse(self.path.parent, current_holder(self.path))
        self._fd = fd
        ppid = os.getppid()
        holder = {"pid": os.getpid(), "token": process_token(os.getpid()), "command": self.command,
                  "host": socket.gethostname(), "time": time.time(), "parent_pid": ppid,
                  "parent_token": process_token(ppid)}
        data = (json.dumps(holder) + "\n").encode()
        # the locked byte range starts at 0 (msvcrt); the content is rewritten in place, never truncated to nothing
        os.lseek(fd, 0, os.SEEK_SET)
        padded = data.ljust(max(len(data), 512))
        os.write(fd, padded)
        os.ftruncate(fd, len(padded))
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock; the file stays (its content is history)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_exc) -> None:
        self.release()


def current_holder(path: Path, wait: float = 2.0) -> dict:
    """The record of the process holding the lock. A holder writes its record just after it takes the lock, so a
    refused process can read the previous holder's (a finished run's) for a moment: such a record, whose process is
    gone, is read again until the new one is there (or `wait` seconds pass)."""
    end = time.monotonic() + wait
    checkable = process_token(os.getpid()) is not None  # start-time tokens come from /proc (Linux)
    while True:
        holder = read_holder(path)
        pid = holder.get("pid")
        live = isinstance(pid, int) and holder.get("token") is not None and process_token(pid) == holder["token"]
        if live or not checkable or time.monotonic() >= end:
            return holder
        time.sleep(0.02)


def read_holder(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text().strip() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # no fcntl there
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
