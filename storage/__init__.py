"""What happened: hpsearch's trial store.

SQLAlchemy tables prefixed ``hp_`` (next to Optuna's own tables in the same database), Alembic
migrations shipped in this package, and a small repository API, :class:`Storage`, that takes ids and
plain values and returns frozen records. Imports nothing of ``hpsearch`` but its error root and no machine
learning library, so the CLI's query commands load quickly.

    storage = open_storage("runs/hpsearch.db")
    study = storage.create_study("demo", engine="optuna", algorithm="tpe", objective="val_accuracy",
                                 direction="maximize", space={...}, dataset={...}, settings={},
                                 versions={})
    trial = storage.start_trial(study.id, {"n_hidden": 2}, worker="host:123")
    storage.record_epoch(trial.id, 0, {"val_accuracy": 0.91})
    storage.finish_trial(trial.id, TrialState.COMPLETE, value=0.91, metrics={"val_accuracy": 0.91})
"""

from __future__ import annotations

from .conventions import EPOCHS_RESTORED_METRIC, config_key
from .credentials import mask_credentials, mask_url
from .errors import (
    BudgetReachedError,
    DatabaseNotFoundError,
    DuplicateTrialError,
    NotOurDatabaseError,
    SchemaError,
    StorageError,
    StorageUrlError,
    StoredDataNotFoundError,
    StudyExistsError,
    StudyNotFoundError,
    TrialConflictError,
    TrialNotFoundError,
    TrialNotRunningError,
)
from .locator import StoreLocation, display_name, normalize_url, safe_url
from .records import ModelRecord, StudyRecord, StudySummary, TrialCopy, TrialRecord, TrialState
from .repository import Storage, open_storage
from .schema import upgrade_database
from .stored_data import payload_key

__all__ = [
    "EPOCHS_RESTORED_METRIC",
    "BudgetReachedError",
    "DatabaseNotFoundError",
    "DuplicateTrialError",
    "ModelRecord",
    "NotOurDatabaseError",
    "SchemaError",
    "Storage",
    "StorageError",
    "StorageUrlError",
    "StoredDataNotFoundError",
    "StoreLocation",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudyRecord",
    "StudySummary",
    "TrialConflictError",
    "TrialCopy",
    "TrialNotFoundError",
    "TrialNotRunningError",
    "TrialRecord",
    "TrialState",
    "config_key",
    "display_name",
    "mask_credentials",
    "mask_url",
    "normalize_url",
    "open_storage",
    "payload_key",
    "safe_url",
    "upgrade_database",
]
