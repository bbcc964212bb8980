"""Per-epoch metrics of a running trial: appending them, one epoch or a batch, folds merged by epoch.

Each write also refreshes the trial's heartbeat and ``epochs_run``, and is refused once the trial has
ended, so a worker that lost its trial to recovery cannot add to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from .conventions import fold_metric_name
from .errors import StorageError
from .records import TrialState
from .store_base import StoreBase
from .tables import EPOCHS, TrialEpochRow, TrialRow, utcnow


class EpochWrites(StoreBase):
    """The epoch methods of :class:`~hpsearch.storage.repository.Storage` (``finish_trial`` writes a
    trial's last epochs through them too)."""

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
                connection.execute(insert(EPOCHS), [
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
