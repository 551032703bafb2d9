"""Errors are part of the interface: one line saying what, where, and what to do."""
from __future__ import annotations


class MMBenchError(Exception):
    """A user-facing error. The CLI prints ``str(err)`` as one line and exits non-zero.

    Build messages as ``"<where>: <what is wrong>; <what to do>"``. ``where`` is a file
    (with ``:line`` and field where known), a dataset or a model name.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.where = where
        self.hint = hint
        text = message
        if where:
            text = f"{where}: {text}"
        if hint:
            text = f"{text}; {hint}"
        super().__init__(text.replace("\n", " "))


class DataError(MMBenchError):
    """A dataset, feature or split file is missing, malformed or inconsistent."""


class ConfigError(MMBenchError):
    """A card, suite or config file is invalid (unknown key, wrong type, missing field)."""


class DownloadError(MMBenchError):
    """A download failed, was truncated, or does not match its checksum."""


class StorageError(MMBenchError):
    """A file or folder cannot be written or read at the OS level: disk full, permission
    denied, read-only file system, a file where a folder is expected, a name too long."""


class RegistryError(MMBenchError):
    """A model/encoder/dataset name is unknown, duplicated, or its plugin is broken."""


class RecordError(MMBenchError):
    """A run record violates the schema."""


class TrainingError(MMBenchError):
    """Training diverged (NaN/inf loss) or a model broke its contract."""
