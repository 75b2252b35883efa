"""User-facing failures: each carries a code, a message naming where (file/line/field), and a hint."""
from __future__ import annotations


class TrainerError(Exception):
    """An error the user can fix; reported as an `error` event and a non-zero exit code."""

    exit_code = 2

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
