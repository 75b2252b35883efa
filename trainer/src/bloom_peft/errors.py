"""User-facing failures: one base, TrainerError(code, message, hint), for every error the trainer reports.

Each carries a code (ERROR_CODES, the list in schemas/events.schema.json `error.code` and queries.schema.json
`QueryError.code`), a message naming where (file/line/field), a hint, and the exit code. `as_trainer_error` turns
anything raised into one, so every command reports errors the same way (an `error` event, or an `{"error": ...}`
answer line).
"""
from __future__ import annotations

# code -> when; test_contracts.py checks the schemas list exactly these
ERROR_CODES = {
    "invalid_config": "a config value is refused (names the field and the file)",
    "invalid_data": "a dataset row or file is refused (names the file, line and field)",
    "invalid_model": "the base model cannot be loaded or is not BLOOM",
    "out_of_memory": "CUDA out of memory at micro-batch 1",
    "disk_full": "the disk filled while writing the run",
    "nan_loss": "the loss or gradient stopped being finite",
    "diverged": "the loss grew far past where it started",
    "run_in_use": "another trainer process holds the run",
    "no_adapter": "the run has not saved an adapter yet",
    "export_failed": "the ONNX or Hugging Face export failed",
    "environment": "the Python environment lacks a package",
    "bad_request": "a query line `serve` cannot answer",
    "internal": "a bug in the trainer (the traceback is in the log)",
}
EXIT_USER, EXIT_INTERNAL = 2, 1
INTERNAL_HINT = "This is a bug in the trainer; the traceback is in the trainer log. Please report it."


class TrainerError(Exception):
    """An error the trainer reports to the user: an `error` event (or answer) and a non-zero exit code."""

    exit_code = EXIT_USER

    def __init__(self, code: str, message: str, hint: str | None = None, *, file: str | None = None,
                 line: int | None = None, field: str | None = None, step: int | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint
        self.file, self.line, self.field, self.step = file, line, field, step

    def event_fields(self) -> dict:
        return {k: v for k, v in dict(code=self.code, message=self.message, hint=self.hint, file=self.file,
                                       line=self.line, field=self.field, step=self.step).items() if v is not None}


class ConfigError(TrainerError):
    def __init__(self, message: str, field: str | None = None, hint: str | None = None, file: str | None = None):
        super().__init__("invalid_config", message, hint, field=field, file=file)


class DataError(TrainerError):
    def __init__(self, message: str, file: str | None = None, line: int | None = None, field: str | None = None,
                 hint: str | None = None):
        super().__init__("invalid_data", message, hint, file=file, line=line, field=field)


class ModelError(TrainerError):
    def __init__(self, message: str, hint: str | None = None, field: str | None = "/model/name_or_path"):
        super().__init__("invalid_model", message, hint, field=field)


class BadRequest(TrainerError):
    """A `serve` request line that is not a query."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        super().__init__("bad_request", message, hint, field=field)


class InternalError(TrainerError):
    """A bug, not a user error: still reported in the same shape, so the host can show it."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str = INTERNAL_HINT):
        super().__init__("internal", message, hint)


def as_trainer_error(e: BaseException) -> TrainerError:
    """What to report for anything raised: a TrainerError as it is; a missing package (ImportError, also
    ModuleNotFoundError) is the environment, not a bug; anything else is `internal`."""
    if isinstance(e, TrainerError):
        return e
    if isinstance(e, ImportError):
        from .check import SETUP_HINT

        return TrainerError("environment", f"the training environment is incomplete: {e}", SETUP_HINT)
    return InternalError(f"{type(e).__name__}: {e}")
