"""Errors raised by the trial store.

Every error carries ``exit_code`` (2: the user must change what they typed or the file they gave;
1: a failure at run time) so the CLI can print ``str(error)`` as one sentence and exit with that code.
"""

from __future__ import annotations

from collections.abc import Sequence


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""

    exit_code: int = 1


class DatabaseNotFoundError(StorageError):
    """The SQLite file a command must read does not exist: a wrong path, not a run-time failure."""

    exit_code = 2


class SchemaError(StorageError):
    """The database exists but its schema is not the one this code reads (newer, older, or not SQL)."""

    exit_code = 2


class StudyNotFoundError(StorageError):
    """No study by that name; the message lists the studies that do exist."""

    exit_code = 2

    def __init__(self, name: str, where: str, existing: Sequence[str]) -> None:
        self.name = name
        self.existing = list(existing)
        if self.existing:
            listing = "existing studies: " + ", ".join(self.existing)
        else:
            listing = "there are no studies yet"
        super().__init__(f"no study '{name}' in {where}; {listing}")


class StudyExistsError(StorageError):
    """A study with that name already exists; creating it again would silently mix two searches."""

    exit_code = 2

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(
            f"study '{name}' already exists in {where}; use `hpsearch resume {name}` or pass --resume"
        )


class TrialNotFoundError(StorageError):
    """No trial with that number (or id) in the study."""

    exit_code = 2
