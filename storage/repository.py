"""The trial store: a small repository API over the hp_ tables.

Every method is one short transaction on its own connection, takes ids and plain values and returns
frozen records, so it is safe to call from several processes (and threads) on one database. Writes
use ``BEGIN IMMEDIATE`` on SQLite (see :mod:`hpsearch.storage.connection`); numbers and names are protected by
unique constraints, so a race ends in a retry or a clear error, never in a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, case, func, insert, literal, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from .connection import (
    WRITE_OPTION,
    check_sqlite_file,
    display_name,
    make_engine,
    normalize_url,
    translate_error,
)
from .errors import (
    BudgetReachedError,
    DuplicateTrialError,
    StorageError,
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialNotRunningError,
)
from .records import ModelRecord, StudyRecord, StudySummary, TrialCopy, TrialRecord, TrialState
from .schema import ensure_schema
from .tables import ModelRow, StudyRow, TrialEpochRow, TrialRow, utcnow

DIRECTIONS = ("minimize", "maximize")
#: Metric of a trial that continued an interrupted one from its checkpoint: the epochs it restored
#: instead of training (written by hpsearch.training.runner).
EPOCHS_RESTORED_METRIC = "epochs_restored"
TRIAL_ORDERS = ("number", "value", "duration", "started")

# PostgreSQL can hand two writers the same next number; each retry sees the winner's row.
_NUMBER_RETRIES = 20

# The record's columns (config_key is the store's own bookkeeping, not part of a trial record).
_TRIAL_COLUMNS = tuple(column for column in TrialRow.__table__.columns if column.key != "config_key")
# The tables themselves for the statements on every trial's path: Core DML on a Table skips the ORM's
# per-statement bookkeeping, a third of a claim's CPU time (scripts/bench_store.py).
_TRIALS = TrialRow.__table__
_STUDIES = StudyRow.__table__
_EPOCHS = TrialEpochRow.__table__


def config_key(identity: Any) -> str:
    """sha256 of a trial's identity (its parameters, plus anything else that makes it distinct work)
    as canonical JSON: equal configurations get equal keys whichever process proposed them."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def open_storage(url: str, *, create: bool = True) -> Storage:
    """Open (and, for a new or empty database, create) the trial store at ``url``.

    ``url`` is an SQLAlchemy URL or a plain SQLite file path. A database with only Optuna's tables (or
    none) gets ours added next to them and is switched to WAL. With ``create=False`` (query commands,
    and those that continue a study) the database must already be hpsearch's: a missing SQLite file
    is DatabaseNotFoundError, another application's database or an empty file NotOurDatabaseError,
    and nothing is created, migrated or switched to WAL, so a typo or a wrong file is left untouched.

    Raises StorageUrlError for a URL that cannot be used, SchemaError for a file that is not SQLite or
    a schema newer or older than this code's, StorageError when the database cannot be opened or
    written.
    """
    url = normalize_url(url)
    check_sqlite_file(url, create=create)
    engine = make_engine(url, journal=create)
    try:
        ensure_schema(engine, url, upgrade_older=False, create=create)
    except BaseException:
        engine.dispose()
        raise
    return Storage(engine, url)


class Storage:
    """Repository of studies, trials, per-epoch metrics and retrained models.

    Build it with :func:`open_storage`, which checks the schema first.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.url = url
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._where = display_name(url)

    @property
    def where(self) -> str:
        """What messages call this database: its file for SQLite, else its URL with ``***`` for a password."""
        return self._where

    def __repr__(self) -> str:
        return f"Storage({self._where!r})"

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except DBAPIError as e:
            raise translate_error(e, self.url, writing=False) from e

    @contextmanager
    def _read_rows(self) -> Iterator[Connection]:
        # Core rows, not a Session: listing 100k trials should not pay for ORM row processing.
        try:
            with self._engine.connect() as connection:
                yield connection
        except DBAPIError as e:
            raise translate_error(e, self.url, writing=False) from e

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
                yield session
        except IntegrityError:
            raise  # callers turn constraint violations into their own errors
        except DBAPIError as e:
            raise translate_error(e, self.url, writing=True) from e

    @contextmanager
    def _write_rows(self) -> Iterator[Connection]:
        # Core statements in one transaction, for the hot write paths: no Session to build and flush.
        try:
            with self._write_engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except DBAPIError as e:
            raise translate_error(e, self.url, writing=True) from e

    # -- studies ----------------------------------------------------------------------------------

    def create_study(
        self,
        name: str,
        *,
        engine: str,
        algorithm: str,
        objective: str,
        direction: str,
        space: dict[str, Any],
        dataset: dict[str, Any],
        settings: dict[str, Any],
        versions: dict[str, Any],
    ) -> StudyRecord:
        """Create a study; StudyExistsError if the name is taken (also when another process wins a race)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, but got {direction!r}")
        now = utcnow()
        row = StudyRow(
            name=name,
            engine=engine,
            algorithm=algorithm,
            objective=objective,
            direction=direction,
            space=space,
            dataset=dataset,
            settings=settings,
            versions=versions,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._write() as session:
                session.add(row)
                session.flush()
                return _study_record(row)
        except IntegrityError as e:
            raise StudyExistsError(name, self._where) from e

    def get_study(self, name: str) -> StudyRecord:
        with self._read() as session:
            row = session.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()
            if row is None:
                existing = session.scalars(select(StudyRow.name).order_by(StudyRow.name)).all()
                raise StudyNotFoundError(name, self._where, existing)
            return _study_record(row)

    def list_studies(self) -> list[StudySummary]:
        """Every study with trial counts and totals, oldest first (two queries whatever the size)."""
        with self._read() as session:
            studies = session.scalars(select(StudyRow).order_by(StudyRow.id)).all()
            copied = TrialRow.copied_from_study.is_not(None)
            stats = session.execute(
                select(
                    TrialRow.study_id,
                    TrialRow.state,
                    func.count(),
                    # Copied trials were trained in their source study: they cost this one nothing.
                    func.coalesce(func.sum(case((copied, 0), else_=TrialRow.epochs_run)), 0),
                    func.coalesce(func.sum(case((copied, 0.0), else_=TrialRow.duration_s)), 0.0),
                    func.min(TrialRow.value),
                    func.max(TrialRow.value),
                    func.coalesce(func.sum(case((copied, 1), else_=0)), 0),
                ).group_by(TrialRow.study_id, TrialRow.state)
            ).all()
            # A retry that continued its interrupted trial from a checkpoint counts that trial's epochs in
            # its own curve (and epochs_run) without training them again: they are counted once, with the
            # interrupted trial. Retries are few, so their metrics are read here rather than summed in SQL.
            retries = session.execute(
                select(TrialRow.study_id, TrialRow.metrics).where(TrialRow.retry_of.is_not(None))
            ).all()
        restored: dict[int, int] = {}
        for study_id, metrics in retries:
            value = (metrics or {}).get(EPOCHS_RESTORED_METRIC)
            if isinstance(value, int | float) and math.isfinite(value):
                restored[study_id] = restored.get(study_id, 0) + int(value)
        per_study: dict[int, list[Any]] = {}
        for study_id, state, count, epochs, seconds, low, high, n_copied in stats:
            per_study.setdefault(study_id, []).append(
                (TrialState(state), count, epochs, seconds, low, high, n_copied)
            )
        summaries = []
        for row in studies:
            counts = {state: 0 for state in TrialState}
            best: float | None = None
            epochs_total = 0
            seconds_total = 0.0
            copied_total = 0
            for state, count, epochs, seconds, low, high, n_copied in per_study.get(row.id, []):
                counts[state] = int(count)
                epochs_total += int(epochs)
                seconds_total += float(seconds)
                copied_total += int(n_copied)
                if state is TrialState.COMPLETE:
                    best = low if row.direction == "minimize" else high
            summaries.append(
                StudySummary(
                    study=_study_record(row),
                    counts=counts,
                    best_value=best,
                    n_trials=sum(counts.values()),
                    epochs_total=epochs_total - restored.get(row.id, 0),
                    seconds_total=seconds_total,
                    copied=copied_total,
                )
            )
        return summaries

    def update_study_settings(self, study_id: int, settings: dict[str, Any]) -> StudyRecord:
        """Merge ``settings`` into the study's settings (keys given win) and return the study."""
        with self._write() as session:
            row = self._study_row(session, study_id)
            row.settings = {**row.settings, **settings}
            row.updated_at = utcnow()
            session.flush()
            return _study_record(row)

    def touch_study(self, study_id: int) -> None:
        with self._write() as session:
            result = session.execute(
                update(StudyRow).where(StudyRow.id == study_id).values(updated_at=utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise self._study_id_missing(session, study_id)

    # -- trials -----------------------------------------------------------------------------------

    def start_trial(
        self,
        study_id: int,
        params: dict[str, Any],
        *,
        engine_trial_id: str | None = None,
        worker: str,
        retry_of: int | None = None,
        parent_number: int | None = None,
        identity: Any = None,
        budget: int | None = None,
        unique: bool = False,
    ) -> TrialRecord:
        """Insert a RUNNING trial numbered max+1 in its study; numbers never repeat across processes.

        The claim is checked in the same transaction that inserts it, so K processes cannot all pass:

        - ``budget``: refuse (BudgetReachedError) when trials that count toward the budget (running, or
          ended on their own; never copies from other studies) already number ``budget``;
        - ``unique``: refuse (DuplicateTrialError) when a trial of the same ``identity`` (default: the
          params) exists, unless this is a retry (``retry_of``) and every earlier one was interrupted.
        """
        key = config_key(params if identity is None else identity)
        for attempt in range(_NUMBER_RETRIES):
            try:
                # A Connection, not a Session: a claim is on every trial's path (see bench_store).
                with self._write_rows() as connection:
                    now = utcnow()
                    # Updating the study's row first locks it on PostgreSQL until commit, which serialises
                    # trial creation per study (SQLite's BEGIN IMMEDIATE already serialised every writer).
                    touched = connection.execute(
                        update(_STUDIES).where(_STUDIES.c.id == study_id).values(updated_at=now)
                    )
                    if touched.rowcount == 0:
                        raise self._study_id_missing(connection, study_id)
                    # The budget's count and the next number in one pass over the study's index.
                    used, last = connection.execute(
                        select(
                            func.count().filter(_counts_toward_budget(study_id)), func.max(TrialRow.number)
                        ).where(TrialRow.study_id == study_id)
                    ).one()
                    if budget is not None and used >= budget:
                        raise BudgetReachedError(
                            f"the study's budget of {budget} trials is used up ({used} counted)"
                        )
                    if unique:
                        self._refuse_duplicate(connection, study_id, key, retry=retry_of is not None)
                    values: dict[str, Any] = dict(
                        study_id=study_id,
                        number=0 if last is None else last + 1,
                        engine_trial_id=engine_trial_id,
                        state=TrialState.RUNNING.value,
                        params=params,
                        value=None,
                        metrics={},
                        started_at=now,
                        ended_at=None,
                        duration_s=None,
                        epochs_run=0,
                        error=None,
                        interrupted=False,
                        retry_of=retry_of,
                        worker=worker,
                        heartbeat_at=now,
                        peak_memory_mb=None,
                        parent_number=parent_number,
                        copied_from_study=None,
                        copied_from_number=None,
                    )
                    trial_id = connection.execute(
                        insert(_TRIALS).values(**values, config_key=key).returning(_TRIALS.c.id)
                    ).scalar_one()
                    return _trial_record([trial_id, *(values[column.key] for column in _TRIAL_COLUMNS[1:])])
            except IntegrityError as e:
                if attempt == _NUMBER_RETRIES - 1:
                    raise StorageError(
                        f"cannot number a new trial of study {study_id} in {self._where}: {e.orig}"
                    ) from e
        raise AssertionError("unreachable")

    @staticmethod
    def _refuse_duplicate(connection: Connection, study_id: int, key: str, *, retry: bool) -> None:
        earlier = connection.execute(
            select(TrialRow.number, TrialRow.state, TrialRow.interrupted)
            .where(TrialRow.study_id == study_id, TrialRow.config_key == key)
            .order_by(TrialRow.number)
        ).all()
        # A retry may follow interrupted attempts of its configuration, nothing else may.
        blocking = [row for row in earlier if not row.interrupted] if retry else list(earlier)
        if blocking:
            raise DuplicateTrialError(blocking[0].number, blocking[0].state)

    def budget_usage(self, study_id: int) -> tuple[int, int]:
        """(trials spent, trials running): spent are those that ended on their own (complete, pruned,
        failed by their own error); interrupted trials are retried and spend nothing, and trials copied
        from other studies (``--warm-start``) were trained there. Two COUNTs over the (study_id, state)
        index, whatever the study's size."""
        with self._read() as session:
            counted = session.scalar(select(func.count()).where(_counts_toward_budget(study_id)))
            running = session.scalar(
                select(func.count()).where(
                    TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING.value
                )
            )
        return int(counted) - int(running), int(running)

    def copy_trials(self, study_id: int, copies: Sequence[TrialCopy]) -> list[TrialRecord]:
        """Add completed trials of other studies to this one, in one transaction (``--warm-start``).

        Each copy is a new COMPLETE trial numbered after the study's last, with the source's value,
        metrics, epochs run and per-epoch curves, and ``copied_from_*`` naming the source; it never counts
        toward the budget. Its configuration key is that of its ``identity`` (default: its params), so the
        engine's proposal of the same configuration is refused as a duplicate instead of trained again.
        """
        if not copies:
            return []
        with self._write() as session:
            study = session.scalars(
                select(StudyRow).where(StudyRow.id == study_id).with_for_update()
            ).one_or_none()
            if study is None:
                raise self._study_id_missing(session, study_id)
            last = session.scalar(select(func.max(TrialRow.number)).where(TrialRow.study_id == study_id))
            number = 0 if last is None else last + 1
            now = utcnow()
            ids = []
            for copy in copies:
                source = copy.source
                if source.state is not TrialState.COMPLETE or source.value is None:
                    raise ValueError(f"only a completed trial with a value can be copied, not {source}")
                origin_study, origin_number = copy.origin
                row = TrialRow(
                    study_id=study_id, number=number, engine_trial_id=None,
                    state=TrialState.COMPLETE.value, params=dict(copy.params), value=source.value,
                    metrics=dict(source.metrics), started_at=now, ended_at=now,
                    duration_s=source.duration_s, epochs_run=source.epochs_run, error=None,
                    interrupted=False, retry_of=None, worker=source.worker, heartbeat_at=now,
                    peak_memory_mb=source.peak_memory_mb, parent_number=None,
                    config_key=config_key(dict(copy.params) if copy.identity is None else copy.identity),
                    copied_from_study=origin_study,
                    copied_from_number=origin_number,
                )
                session.add(row)
                session.flush()
                # The source's curves, copied in the database: plots and pages show them like any trial's.
                session.execute(
                    insert(TrialEpochRow).from_select(
                        ["trial_id", "epoch", "metrics", "recorded_at"],
                        select(literal(row.id), TrialEpochRow.epoch, TrialEpochRow.metrics,
                               TrialEpochRow.recorded_at).where(TrialEpochRow.trial_id == source.id),
                    )
                )
                ids.append(row.id)
                number += 1
            study.updated_at = now
        query = _trial_select().where(TrialRow.id.in_(ids)).order_by(TrialRow.number)
        return [_trial_record(row) for row in self._rows(query, None)]

    def copied_trials(self, study_id: int, *, with_epochs: bool = False) -> list[TrialRecord]:
        """The study's trials copied from other studies (``--warm-start``), by number."""
        query = (_trial_select()
                 .where(TrialRow.study_id == study_id, TrialRow.copied_from_study.is_not(None))
                 .order_by(TrialRow.number))
        rows = self._rows(query, None)
        curves = self._curves_for(rows, study_id, None) if with_epochs else {}
        return [_trial_record(row, curves.get(row[0])) for row in rows]

    def beat(self, trial_ids: Sequence[int]) -> None:
        """Refresh the heartbeat of these trials while they run (a worker's heartbeat thread)."""
        if not trial_ids:
            return
        with self._write() as session:
            session.execute(
                update(TrialRow)
                .where(TrialRow.id.in_(list(trial_ids)), TrialRow.state == TrialState.RUNNING.value)
                .values(heartbeat_at=utcnow())
            )

    def _not_running(self, session: Session | Connection, trial_id: int) -> Exception:
        """Why a conditional write to a RUNNING trial matched nothing."""
        row = session.execute(select(TrialRow.number, TrialRow.state).where(TrialRow.id == trial_id)).first()
        if row is None:
            return TrialNotFoundError(f"no trial with id {trial_id} in {self._where}")
        return TrialNotRunningError(trial_id, row.number, row.state)

    def record_epoch(
        self, trial_id: int, epoch: int, metrics: dict[str, float], *, fold: int | None = None
    ) -> None:
        """Append one epoch's metrics (0-based ``epoch``); also the trial's heartbeat.

        With ``fold`` (a trial scored by cross-validation, which trains one model per fold), the metrics
        are stored as ``split{fold}_{name}``, scikit-learn's ``cv_results_`` naming, in the same epoch row
        as the other folds' epoch: curves stay one list per name aligned by epoch, and ``epochs_run``
        is the most epochs any fold trained.
        """
        self.record_epochs(trial_id, [(epoch, metrics, fold)])

    def record_epochs(
        self, trial_id: int, epochs: Sequence[tuple[int, dict[str, float], int | None]]
    ) -> None:
        """Append several epochs ``(epoch, metrics, fold)`` of a RUNNING trial in one transaction.

        Writing epochs in batches keeps the store's cost per trial low: a kill loses at most the batch
        not yet written. Refused (TrialNotRunningError) once the trial has ended."""
        if not epochs:
            return
        with self._write_rows() as connection:
            self._claim_running(connection, trial_id, epochs)
            self._add_epochs(connection, trial_id, epochs)

    def _claim_running(
        self, connection: Connection, trial_id: int, epochs: Sequence[tuple[int, Any, Any]]
    ) -> None:
        # Updating the trial row first also locks it (PostgreSQL): folds trained in parallel merge into one
        # epoch row one at a time (SQLite's BEGIN IMMEDIATE does the same).
        last = max(epoch for epoch, _, _ in epochs)
        result = connection.execute(
            update(TrialRow)
            .where(TrialRow.id == trial_id, TrialRow.state == TrialState.RUNNING.value)
            .values(
                epochs_run=case((TrialRow.epochs_run > last, TrialRow.epochs_run), else_=last + 1),
                heartbeat_at=utcnow(),
            )
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise self._not_running(connection, trial_id)

    def _add_epochs(
        self, connection: Connection, trial_id: int,
        epochs: Sequence[tuple[int, dict[str, float], int | None]],
    ) -> None:
        now = utcnow()
        if all(fold is None for _, _, fold in epochs):
            # The common case (one model per trial): one multi-row INSERT, no read; the unique
            # (trial_id, epoch) constraint refuses an epoch written twice.
            try:
                connection.execute(insert(_EPOCHS), [
                    {"trial_id": trial_id, "epoch": epoch, "metrics": metrics, "recorded_at": now}
                    for epoch, metrics, _ in epochs
                ])
            except IntegrityError as e:
                numbers = sorted(epoch for epoch, _, _ in epochs)
                which = (f"epoch {numbers[0]}" if len(numbers) == 1
                         else f"one of epochs {numbers[0]}-{numbers[-1]}")
                raise StorageError(f"{which} of trial id {trial_id} is already recorded") from e
            return
        merged: dict[int, dict[str, Any]] = {}
        for epoch, metrics, fold in epochs:
            named = metrics if fold is None else {fold_metric_name(fold, k): v for k, v in metrics.items()}
            into = merged.setdefault(epoch, {})
            if named.keys() & into.keys():
                raise StorageError(f"epoch {epoch} of trial id {trial_id} is given twice")
            into.update(named)
        existing = dict(connection.execute(
            select(TrialEpochRow.epoch, TrialEpochRow.metrics).where(
                TrialEpochRow.trial_id == trial_id, TrialEpochRow.epoch.in_(list(merged))
            )
        ).all())
        try:
            for epoch, metrics in merged.items():
                before = existing.get(epoch)
                if before is None:
                    connection.execute(insert(TrialEpochRow).values(
                        trial_id=trial_id, epoch=epoch, metrics=metrics, recorded_at=now))
                elif metrics.keys() & before.keys():
                    raise StorageError(f"epoch {epoch} of trial id {trial_id} is already recorded")
                else:  # another fold's metrics of the same epoch
                    connection.execute(
                        update(TrialEpochRow)
                        .where(TrialEpochRow.trial_id == trial_id, TrialEpochRow.epoch == epoch)
                        .values(metrics={**before, **metrics}, recorded_at=now)
                    )
        except IntegrityError as e:  # another writer inserted the row first (only without the row lock)
            raise StorageError(f"an epoch of trial id {trial_id} raced another write") from e

    def merge_trial_metrics(self, trial_id: int, metrics: dict[str, Any]) -> None:
        """Add ``metrics`` to a trial's metrics while it runs (keys given win); also its heartbeat.

        For results that arrive in parts, such as cross-validation folds: each is committed as it ends,
        so a crash keeps them, and ``finish_trial`` later writes the complete set.
        """
        with self._write() as session:
            row = session.get(TrialRow, trial_id, with_for_update=True)
            if row is None or row.state != TrialState.RUNNING.value:
                raise self._not_running(session, trial_id)
            row.metrics = {**row.metrics, **metrics}
            row.heartbeat_at = utcnow()

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        *,
        value: float | None = None,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
        interrupted: bool = False,
        peak_memory_mb: float | None = None,
        epochs: Sequence[tuple[int, dict[str, float], int | None]] = (),
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> TrialRecord:
        """Close a RUNNING trial in a final state, with its last ``epochs`` not yet written (one
        transaction); sets ended_at and duration_s (from ``started_at`` when the caller has the trial's
        record at hand, which saves a read; else from the row). ``ended_at`` (default: now) is when the
        trial stopped, where that was earlier: recovery gives an abandoned trial's last heartbeat, so its
        duration does not count the time until someone noticed.

        One conditional UPDATE (``WHERE state = 'RUNNING'``): a trial ends exactly once. A second finish
        (a paused worker reporting after recovery failed its trial) raises TrialNotRunningError and
        changes nothing. A non-finite ``value`` is stored as None (it must never rank as best); keep it
        visible by passing it in ``metrics`` too.
        """
        state = TrialState(state)
        if state is TrialState.RUNNING:
            raise ValueError("finish_trial needs a final state (COMPLETE, PRUNED or FAILED), not RUNNING")
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                value = None
        with self._write_rows() as connection:
            if started_at is None:
                started_at = connection.execute(
                    select(_TRIALS.c.started_at).where(_TRIALS.c.id == trial_id)
                ).scalar()
                if started_at is None:
                    raise TrialNotFoundError(f"no trial with id {trial_id} in {self._where}")
            now = utcnow()
            ended = now if ended_at is None else max(started_at, min(ended_at, now))
            values: dict[str, Any] = dict(
                state=state.value, value=value, error=error, interrupted=interrupted,
                peak_memory_mb=peak_memory_mb, ended_at=ended, heartbeat_at=now,
                duration_s=max(0.0, (ended - started_at).total_seconds()),
            )
            if metrics is not None:
                values["metrics"] = dict(metrics)
            if epochs:
                last = max(epoch for epoch, _, _ in epochs)
                ran = _TRIALS.c.epochs_run
                values["epochs_run"] = case((ran > last, ran), else_=last + 1)
            # RETURNING gives the finished row back without another read (SQLite >= 3.35, PostgreSQL).
            row = connection.execute(
                update(_TRIALS)
                .where(_TRIALS.c.id == trial_id, _TRIALS.c.state == TrialState.RUNNING.value)
                .values(**values)
                .returning(*_TRIAL_COLUMNS)
            ).first()
            if row is None:
                raise self._not_running(connection, trial_id)
            if epochs:
                self._add_epochs(connection, trial_id, epochs)
            record = _trial_record(row)
            connection.execute(
                update(_STUDIES).where(_STUDIES.c.id == record.study_id).values(updated_at=now)
            )
            return record

    def set_engine_trial_id(self, trial_id: int, engine_trial_id: str) -> None:
        with self._write() as session:
            result = session.execute(
                update(TrialRow).where(TrialRow.id == trial_id).values(engine_trial_id=engine_trial_id)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise TrialNotFoundError(f"no trial with id {trial_id} in {self._where}")

    def get_trial(self, study_id: int, number: int, *, with_epochs: bool = False) -> TrialRecord:
        query = _trial_select().where(TrialRow.study_id == study_id, TrialRow.number == number)
        rows = self._rows(query, None)
        if not rows:
            with self._read() as session:
                study = session.get(StudyRow, study_id)
                if study is None:
                    raise self._study_id_missing(session, study_id)
                count, last = session.execute(
                    select(func.count(), func.max(TrialRow.number)).where(TrialRow.study_id == study_id)
                ).one()
            have = f"trials 0..{last}" if count else "no trials yet"
            raise TrialNotFoundError(f"study '{study.name}' has no trial {number} ({have})")
        curves = self._curves_for(rows, study_id, None) if with_epochs else {}
        return _trial_record(rows[0], curves.get(rows[0][0]))

    def list_trials(
        self,
        study_id: int,
        *,
        states: Iterable[TrialState] | None = None,
        order: str = "number",
        descending: bool = False,
        limit: int | None = None,
        with_epochs: bool = False,
    ) -> list[TrialRecord]:
        """Trials of a study, filtered by state and sorted; ``value`` order puts missing values last."""
        if order not in TRIAL_ORDERS:
            raise ValueError(f"order must be one of {TRIAL_ORDERS}, but got {order!r}")
        if states is not None:
            states = [TrialState(state) for state in states]
        query = _trial_select().where(TrialRow.study_id == study_id)
        if states is not None:
            query = query.where(TrialRow.state.in_([state.value for state in states]))
        if order == "value":
            # Non-null values first through the (study_id, value) index, then the trials without one:
            # a single ORDER BY "value IS NULL" would sort every trial of the study to return ten.
            valued = query.where(TrialRow.value.is_not(None)).order_by(
                TrialRow.value.desc() if descending else TrialRow.value.asc(), TrialRow.number
            )
            rows = self._rows(valued, limit)
            if limit is None or len(rows) < limit:
                missing = query.where(TrialRow.value.is_(None)).order_by(TrialRow.number)
                rows += self._rows(missing, None if limit is None else limit - len(rows))
        else:
            key = {
                "number": TrialRow.number,
                "duration": TrialRow.duration_s,
                "started": TrialRow.started_at,
            }[order]
            if order == "duration":
                # Backends disagree on where NULLs sort; running trials (no duration) go last either way.
                query = query.order_by(key.is_(None))
            query = query.order_by(key.desc() if descending else key.asc(), TrialRow.number)
            rows = self._rows(query, limit)
        curves = self._curves_for(rows, study_id, states) if with_epochs else {}
        return [_trial_record(row, curves.get(row[0])) for row in rows]

    def best_trials(self, study_id: int, k: int = 1) -> list[TrialRecord]:
        """The ``k`` best COMPLETE trials with a value, by the study's direction; ties by number."""
        with self._read() as session:
            direction = session.scalar(select(StudyRow.direction).where(StudyRow.id == study_id))
            if direction is None:
                raise self._study_id_missing(session, study_id)
        key = TrialRow.value.asc() if direction == "minimize" else TrialRow.value.desc()
        query = (
            _trial_select()
            .where(
                TrialRow.study_id == study_id,
                TrialRow.state == TrialState.COMPLETE.value,
                TrialRow.value.is_not(None),
            )
            .order_by(key, TrialRow.number)
            .limit(k)
        )
        return [_trial_record(row) for row in self._rows(query, None)]

    def count_trials(self, study_id: int) -> dict[TrialState, int]:
        counts = {state: 0 for state in TrialState}
        with self._read() as session:
            rows = session.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.study_id == study_id)
                .group_by(TrialRow.state)
            ).all()
        for state, count in rows:
            counts[TrialState(state)] = int(count)
        return counts

    def count_interrupted(self, study_id: int) -> int:
        """Failed trials that were cut short (a kill, Ctrl-C, a lost process), not failed by their
        configuration: each is retried, on resume or in the same run."""
        with self._read() as session:
            count = session.scalar(
                select(func.count()).where(TrialRow.study_id == study_id, TrialRow.interrupted.is_(True))
            )
        return int(count or 0)

    def finished_by_worker(self, study_id: int, workers: Iterable[str]) -> dict[str, int]:
        """How many trials each of ``workers`` (``host:pid``) finished in the study (complete, pruned or
        failed): the supervisor starts a warm replacement for a worker about to be recycled."""
        wanted = list(workers)
        counts = {worker: 0 for worker in wanted}
        if not wanted:
            return counts
        ended = [TrialState.COMPLETE.value, TrialState.PRUNED.value, TrialState.FAILED.value]
        with self._read() as session:
            rows = session.execute(
                select(TrialRow.worker, func.count())
                .where(TrialRow.study_id == study_id, TrialRow.worker.in_(wanted), TrialRow.state.in_(ended))
                .group_by(TrialRow.worker)
            ).all()
        for worker, count in rows:
            counts[str(worker)] = int(count)
        return counts

    def running_trials(self, study_id: int) -> list[TrialRecord]:
        return self.list_trials(study_id, states=[TrialState.RUNNING])

    def _rows(self, query: Select[Any], limit: int | None) -> list[Any]:
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._read_rows() as connection:
            return list(connection.execute(query))

    def _curves_for(
        self, rows: Sequence[Any], study_id: int, states: Iterable[TrialState] | None
    ) -> dict[int, dict[str, list[float | None]]]:
        """Curves of the listed trials in one query, however many there are."""
        if not rows:
            return {}
        ids = [row[0] for row in rows]
        condition: ColumnElement[bool]
        if len(ids) <= 500:
            condition = TrialEpochRow.trial_id.in_(ids)
        else:
            # Too many ids for bound parameters: select every trial of the study (a superset of the
            # listed ones when limited) and keep what was listed.
            of_study = select(TrialRow.id).where(TrialRow.study_id == study_id)
            if states is not None:
                of_study = of_study.where(TrialRow.state.in_([TrialState(s).value for s in states]))
            condition = TrialEpochRow.trial_id.in_(of_study.scalar_subquery())
        with self._read_rows() as connection:
            return _curves_from(
                connection.execute(
                    select(TrialEpochRow.trial_id, TrialEpochRow.metrics)
                    .where(condition)
                    .order_by(TrialEpochRow.trial_id, TrialEpochRow.epoch)
                )
            )

    # -- models -----------------------------------------------------------------------------------

    def add_model(
        self,
        study_id: int,
        *,
        trial_number: int,
        path: str,
        sha256: str,
        test_metrics: dict[str, Any],
        settings: dict[str, Any],
        epochs_run: int,
        stop_reason: str | None,
    ) -> ModelRecord:
        """Record a retrained, exported model of trial ``trial_number``'s configuration."""
        try:
            with self._write() as session:
                row = ModelRow(
                    study_id=study_id,
                    trial_number=trial_number,
                    path=str(path),
                    sha256=sha256,
                    test_metrics=test_metrics,
                    settings=settings,
                    epochs_run=epochs_run,
                    stop_reason=stop_reason,
                    created_at=utcnow(),
                )
                session.add(row)
                session.flush()
                return _model_record(row)
        except IntegrityError as e:  # the foreign key: no such study
            with self._read() as session:
                raise self._study_id_missing(session, study_id) from e

    def list_models(self, study_id: int) -> list[ModelRecord]:
        with self._read() as session:
            query = select(ModelRow).where(ModelRow.study_id == study_id).order_by(ModelRow.id)
            rows = session.scalars(query)
            return [_model_record(row) for row in rows]

    # -- helpers ----------------------------------------------------------------------------------

    def _study_row(self, session: Session, study_id: int) -> StudyRow:
        row = session.get(StudyRow, study_id)
        if row is None:
            raise self._study_id_missing(session, study_id)
        return row

    def _study_id_missing(self, session: Session | Connection, study_id: int) -> StudyNotFoundError:
        existing = session.scalars(select(StudyRow.name).order_by(StudyRow.name)).all()
        return StudyNotFoundError(f"#{study_id}", self._where, existing)


def fold_metric_name(fold: int, name: str) -> str:
    """How a per-fold metric is named in curves and metrics: ``split0_loss``, as in ``cv_results_``."""
    return f"split{fold}_{name}"


def _counts_toward_budget(study_id: int) -> ColumnElement[bool]:
    """Trials of a study that use its budget: not interrupted (those are retried) and not copied from
    another study (those were trained there)."""
    return (TrialRow.study_id == study_id) & TrialRow.interrupted.is_(False) & (
        TrialRow.copied_from_study.is_(None)
    )


def _trial_select() -> Select[Any]:
    # Columns, not ORM entities: listing 100k trials should not build 100k identity-mapped objects.
    return select(*_TRIAL_COLUMNS)


def _curves_from(rows: Iterable[Any]) -> dict[int, dict[str, list[float | None]]]:
    """Per-trial curves from (trial_id, metrics) rows ordered by trial and epoch."""
    per_trial: dict[int, list[dict[str, Any]]] = {}
    for trial_id, metrics in rows:
        per_trial.setdefault(trial_id, []).append(metrics)
    curves: dict[int, dict[str, list[float | None]]] = {}
    for trial_id, epochs in per_trial.items():
        names: dict[str, None] = {}
        for metrics in epochs:
            names.update(dict.fromkeys(metrics))
        curves[trial_id] = {name: [m.get(name) for m in epochs] for name in names}
    return curves


def _study_record(row: StudyRow) -> StudyRecord:
    return StudyRecord(
        id=row.id,
        name=row.name,
        engine=row.engine,
        algorithm=row.algorithm,
        objective=row.objective,
        direction=row.direction,
        space=row.space,
        dataset=row.dataset,
        settings=row.settings,
        versions=row.versions,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_STATES = {state.value: state for state in TrialState}


def _trial_record(row: Sequence[Any], curves: dict[str, list[float | None]] | None = None) -> TrialRecord:
    """Record from a row of :func:`_trial_select` (columns in table order); the hot path of listings."""
    (
        id_,
        study_id,
        number,
        engine_trial_id,
        state,
        params,
        value,
        metrics,
        started_at,
        ended_at,
        duration_s,
        epochs_run,
        error,
        interrupted,
        retry_of,
        worker,
        heartbeat_at,
        peak_memory_mb,
        parent_number,
        copied_from_study,
        copied_from_number,
    ) = row
    return TrialRecord(
        id=id_,
        study_id=study_id,
        number=number,
        engine_trial_id=engine_trial_id,
        state=_STATES[state],
        params=params,
        value=value,
        metrics=metrics,
        started_at=started_at,
        ended_at=ended_at,
        duration_s=duration_s,
        epochs_run=epochs_run,
        error=error,
        interrupted=bool(interrupted),
        retry_of=retry_of,
        worker=worker,
        heartbeat_at=heartbeat_at,
        peak_memory_mb=peak_memory_mb,
        parent_number=parent_number,
        copied_from_study=copied_from_study,
        copied_from_number=copied_from_number,
        curves=curves or {},
    )


def _trial_record_of(row: TrialRow) -> TrialRecord:
    return _trial_record([getattr(row, column.key) for column in _TRIAL_COLUMNS])


def _model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        id=row.id,
        study_id=row.study_id,
        trial_number=row.trial_number,
        path=row.path,
        sha256=row.sha256,
        test_metrics=row.test_metrics,
        settings=row.settings,
        epochs_run=row.epochs_run,
        stop_reason=row.stop_reason,
        created_at=row.created_at,
    )
