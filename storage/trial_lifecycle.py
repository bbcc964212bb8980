"""A trial's life in the store: claimed (started) within the study's budget and without duplicating
an earlier configuration, kept alive by heartbeats, given partial metrics, finished exactly once.

Numbers and configurations are protected by the same transaction that inserts a trial (and by unique
constraints), so K processes claiming at once end in a retry or a clear error, never a duplicate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .conventions import config_key
from .epochs import EpochWrites
from .errors import BudgetReachedError, DuplicateTrialError, StorageError, TrialNotFoundError
from .records import TrialRecord, TrialState
from .row_records import TRIAL_COLUMNS, trial_record
from .tables import STUDIES, TRIALS, TrialRow, utcnow

# PostgreSQL can hand two writers the same next number; each retry sees the winner's row.
_NUMBER_RETRIES = 20


class TrialLifecycle(EpochWrites):
    """The methods of :class:`~hpsearch.storage.repository.Storage` that start, keep alive and end a
    trial; an epoch store underneath because finishing a trial writes its last epochs."""

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
                        update(STUDIES).where(STUDIES.c.id == study_id).values(updated_at=now)
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
                        insert(TRIALS).values(**values, config_key=key).returning(TRIALS.c.id)
                    ).scalar_one()
                    return trial_record([trial_id, *(values[column.key] for column in TRIAL_COLUMNS[1:])])
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
                    select(TRIALS.c.started_at).where(TRIALS.c.id == trial_id)
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
                ran = TRIALS.c.epochs_run
                values["epochs_run"] = case((ran > last, ran), else_=last + 1)
            # RETURNING gives the finished row back without another read (SQLite >= 3.35, PostgreSQL).
            row = connection.execute(
                update(TRIALS)
                .where(TRIALS.c.id == trial_id, TRIALS.c.state == TrialState.RUNNING.value)
                .values(**values)
                .returning(*TRIAL_COLUMNS)
            ).first()
            if row is None:
                raise self._not_running(connection, trial_id)
            if epochs:
                self._add_epochs(connection, trial_id, epochs)
            record = trial_record(row)
            connection.execute(
                update(STUDIES).where(STUDIES.c.id == record.study_id).values(updated_at=now)
            )
            return record

    def set_engine_trial_id(self, trial_id: int, engine_trial_id: str) -> None:
        """Record the engine's own id of a trial (e.g. Optuna's); TrialNotFoundError if there is none."""
        with self._write() as session:
            result = session.execute(
                update(TrialRow).where(TrialRow.id == trial_id).values(engine_trial_id=engine_trial_id)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise TrialNotFoundError(f"no trial with id {trial_id} in {self._where}")


def _counts_toward_budget(study_id: int) -> ColumnElement[bool]:
    """Trials of a study that use its budget: not interrupted (those are retried) and not copied from
    another study (those were trained there)."""
    return (TrialRow.study_id == study_id) & TrialRow.interrupted.is_(False) & (
        TrialRow.copied_from_study.is_(None)
    )
