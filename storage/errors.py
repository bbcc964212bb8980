"""Errors raised by the trial store.

Every error carries ``exit_code`` (2: the user must change what they typed or the file they gave;
1: a failure at run time) so the CLI can print ``str(error)`` as one sentence and exit with that code.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""

    exit_code: int = 1


class DatabaseNotFoundError(StorageError):
    """The SQLite file a command must read does not exist: a wrong path, not a run-time failure."""

    exit_code = 2


class StorageUrlError(StorageError):
    """The storage URL cannot be parsed or names a driver that is not installed: the user must fix it."""

    exit_code = 2


class NotOurDatabaseError(StorageError):
    """A read-only command was pointed at a database hpsearch did not write (another app's, an empty file)."""

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
            f"study '{name}' already exists in {where}; use `hpsearch resume {shlex.quote(name)}` or pass "
            "--resume"
        )


class TrialNotFoundError(StorageError):
    """No trial with that number (or id) in the study."""

    exit_code = 2


class TrialConflictError(Exception):
    """A trial write the store refused because another process got there first.

    Not a StorageError: the database works, the write was simply no longer (or not yet) allowed, and
    the caller decides what that means (a late result is dropped, a duplicate is skipped).
    """

    exit_code: int = 1


class TrialNotRunningError(TrialConflictError):
    """The trial already ended (for example recovery failed it while its worker was paused): a finished
    trial stays finished, so this late write is refused."""

    def __init__(self, trial_id: int, number: int, state: str) -> None:
        self.trial_id = trial_id
        self.number = number
        self.state = state
        super().__init__(f"trial #{number} is already {state}; its late result is refused")


class BudgetReachedError(TrialConflictError):
    """Claiming one more trial would exceed the study's trial budget (other workers used it up)."""


class DuplicateTrialError(TrialConflictError):
    """The configuration was already tried (or is being tried) in this study."""

    def __init__(self, number: int, state: str) -> None:
        self.number = number
        self.state = state
        super().__init__(f"the same configuration is trial #{number} ({state})")
