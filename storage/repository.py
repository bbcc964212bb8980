"""The trial store: a small repository API over the hp_ tables.

:class:`Storage` is one object to callers, put together from parts that each hold one kind of
operation: studies (:mod:`.studies`), a trial's life from claim to finish (:mod:`.trial_lifecycle`,
with its epochs in :mod:`.epochs`), reading trials (:mod:`.trial_queries`), warm-start copies
(:mod:`.trial_copies`), retrained models (:mod:`.retrained_models`) and data given in memory
(:mod:`.stored_data`), all on the engine and transactions of :mod:`.store_base`. The parts are base
classes rather than objects Storage delegates to because callers use one flat API, the parts share one
engine, and tests patch ``Storage._add_epochs``.

Every method is one short transaction on its own connection, takes ids and plain values and returns
frozen records, so it is safe to call from several processes (and threads) on one database. Writes
use ``BEGIN IMMEDIATE`` on SQLite (see :mod:`hpsearch.storage.connection`); numbers and names are protected by
unique constraints, so a race ends in a retry or a clear error, never in a duplicate.
"""

from __future__ import annotations

from .connection import check_sqlite_file, make_engine
from .locator import StoreLocation
from .retrained_models import RetrainedModels
from .schema import ensure_schema
from .stored_data import StoredData
from .studies import StudyOperations
from .trial_copies import TrialCopies
from .trial_lifecycle import TrialLifecycle
from .trial_queries import TrialQueries


class Storage(StudyOperations, TrialLifecycle, TrialQueries, TrialCopies, RetrainedModels, StoredData):
    """Repository of studies, trials, per-epoch metrics and retrained models.

    Build it with :func:`open_storage`, which checks the schema first.
    """


def open_storage(url: StoreLocation | str, *, create: bool = True) -> Storage:
    """Open (and, for a new or empty database, create) the trial store at ``url``.

    ``url`` is an SQLAlchemy URL, a plain SQLite file path, or either already parsed (a
    :class:`~hpsearch.storage.locator.StoreLocation`). A database with only Optuna's tables (or none) gets
    ours added next to them and is switched to WAL. With ``create=False`` (query commands,
    and those that continue a study) the database must already be hpsearch's: a missing SQLite file
    is DatabaseNotFoundError, another application's database or an empty file NotOurDatabaseError,
    and nothing is created, migrated or switched to WAL, so a typo or a wrong file is left untouched.

    Raises StorageUrlError for a URL that cannot be used, SchemaError for a file that is not SQLite or
    a schema newer or older than this code's, StorageError when the database cannot be opened or
    written.
    """
    location = StoreLocation.of(url)
    check_sqlite_file(location, create=create)
    engine = make_engine(location, journal=create)
    try:
        ensure_schema(engine, location, upgrade_older=False, create=create)
    except BaseException:
        engine.dispose()
        raise
    return Storage(engine, location)
