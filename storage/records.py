"""Frozen records returned by :class:`storage.Storage`.

Records are plain values: callers never hold a database session, so a record stays valid after the
transaction that produced it is gone and can be passed between threads or pickled to other processes.
Datetimes are timezone-aware UTC; JSON columns come back as plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TrialState(StrEnum):
    """Life cycle of a trial: RUNNING until it ends in exactly one of the three final states."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"

    def is_finished(self) -> bool:
        return self is not TrialState.RUNNING


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    engine: str
    algorithm: str
    objective: str
    direction: str  # "minimize" | "maximize"
    space: dict[str, Any]
    dataset: dict[str, Any]
    settings: dict[str, Any]
    versions: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    id: int
    study_id: int
    number: int
    engine_trial_id: str | None
    state: TrialState
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    epochs_run: int
    error: str | None
    interrupted: bool
    retry_of: int | None
    worker: str
    heartbeat_at: datetime
    peak_memory_mb: float | None
    parent_number: int | None
    # Per-epoch values by metric name, aligned by epoch (None where a metric was missing that epoch).
    # Empty unless the query asked for ``with_epochs=True``: loading curves costs a second query.
    curves: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySummary:
    study: StudyRecord
    counts: dict[TrialState, int]
    best_value: float | None
    n_trials: int
    epochs_total: int
    seconds_total: float


@dataclass(frozen=True)
class ModelRecord:
    id: int
    study_id: int
    trial_number: int
    path: str
    sha256: str
    test_metrics: dict[str, Any]
    settings: dict[str, Any]
    epochs_run: int
    stop_reason: str | None
    created_at: datetime
