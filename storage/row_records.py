"""Rows of the hp_ tables turned into the frozen records callers get.

Every part of :class:`~hpsearch.storage.repository.Storage` returns records built here, so a record
has one shape whichever query produced it. Trials are read as plain columns (:func:`trial_select`)
rather than ORM objects: listing 100k trials is the hot path of the query commands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, select

from .records import ModelRecord, StudyRecord, TrialRecord, TrialState
from .tables import ModelRow, StudyRow, TrialRow

# The record's columns (config_key is the store's own bookkeeping, not part of a trial record).
TRIAL_COLUMNS = tuple(column for column in TrialRow.__table__.columns if column.key != "config_key")

_STATES = {state.value: state for state in TrialState}


def trial_select() -> Select[Any]:
    """A SELECT of :data:`TRIAL_COLUMNS`, for :func:`trial_record`; callers add WHERE and ORDER BY."""
    # Columns, not ORM entities: listing 100k trials should not build 100k identity-mapped objects.
    return select(*TRIAL_COLUMNS)


def trial_record(row: Sequence[Any], curves: dict[str, list[float | None]] | None = None) -> TrialRecord:
    """Record from a row of :func:`trial_select` (columns in table order); the hot path of listings.

    Args:
        row: the values of :data:`TRIAL_COLUMNS`, in that order.
        curves: the trial's per-epoch metrics by name (:func:`curves_from`); none when not asked for.
    """
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


def curves_from(rows: Iterable[Any]) -> dict[int, dict[str, list[float | None]]]:
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


def _record_of(row: Any, record_class: type) -> Any:
    """The record of an ORM row whose columns carry the record's fields under the same names."""
    names = [field.name for field in dataclasses.fields(record_class)]
    return record_class(**{name: getattr(row, name) for name in names})


def study_record(row: StudyRow) -> StudyRecord:
    """Record of a study's ORM row."""
    return _record_of(row, StudyRecord)


def model_record(row: ModelRow) -> ModelRecord:
    """Record of a retrained model's ORM row."""
    return _record_of(row, ModelRecord)
