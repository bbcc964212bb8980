"""Errors raised by the trial store.

All derive from :class:`hpsearch.errors.HpsearchError`, so each carries ``exit_code`` (1: a failure at
run time) and the CLI prints ``str(error)`` as one sentence; those that are the user's input (a wrong
path, URL, database, study or trial) are also :class:`hpsearch.errors.InputError`, a ``ValueError`` with
exit code 2. ``hpsearch.errors`` imports nothing of the project, so this adds no import cycle.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from hpsearch.errors import HpsearchError, InputError


class StorageError(HpsearchError):
    """Base of every error the storage layer raises on purpose; ``except StorageError`` means "the
    database failed or refused", never a trial-write conflict (see :class:`TrialConflictError`)."""


class DatabaseNotFoundError(StorageError, InputError):
    """The SQLite file a command must read does not exist: a wrong path, not a run-time failure."""


class StorageUrlError(StorageError, InputError):
    """The storage URL cannot be parsed or names a driver that is not installed: the user must fix it."""


class NotOurDatabaseError(StorageError, InputError):
    """A read-only command was pointed at a database hpsearch did not write (another app's, an empty file)."""


class SchemaError(StorageError, InputError):
    """The database exists but its schema is not the one this code reads (newer, older, or not SQL)."""


class StudyNotFoundError(StorageError, InputError):
    """No study by that name; the message lists the studies that do exist."""

    def __init__(self, name: str, where: str, existing: Sequence[str]) -> None:
        self.name = name
        self.existing = list(existing)
        if self.existing:
            listing = "existing studies: " + ", ".join(self.existing)
        else:
            listing = "there are no studies yet"
        super().__init__(f"no study '{name}' in {where}; {listing}")


class StudyExistsError(StorageError, InputError):
    """A study with that name already exists; creating it again would silently mix two searches."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(
            f"study '{name}' already exists in {where}; use `hpsearch resume {shlex.quote(name)}` or pass "
            "--resume"
        )


class TrialNotFoundError(StorageError, InputError):
    """No trial with that number (or id) in the study."""


class TrialConflictError(HpsearchError):
    """A trial write the store refused because another process got there first.

    Not a StorageError: the database works, the write was simply no longer (or not yet) allowed, and
    the caller decides what that means (a late result is dropped, a duplicate is skipped). Still under
    the root, with exit code 1: its message is a sentence for a user, and one that escapes to the CLI is
    reported as that sentence, not as an unexpected error.
    """


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


class StoredDataNotFoundError(StorageError, InputError):
    """The data a study was created from (given in memory, kept in the store) is not in this database."""
