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
    #: Set on a trial copied from another study by ``--warm-start`` (that study's name and trial number);
    #: None for a trial trained in this study. A copy never counts toward the trial budget.
    copied_from_study: str | None
    copied_from_number: int | None
    # Per-epoch values by metric name, aligned by epoch (None where a metric was missing that epoch).
    # Empty unless the query asked for ``with_epochs=True``: loading curves costs a second query.
    curves: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def copied(self) -> bool:
        return self.copied_from_study is not None

    @property
    def copied_from(self) -> str | None:
        """``study-name #3`` for a copied trial, as listings show it; None for a trained one."""
        if self.copied_from_study is None:
            return None
        return f"{self.copied_from_study} #{self.copied_from_number}"


@dataclass(frozen=True)
class StudySummary:
    study: StudyRecord
    counts: dict[TrialState, int]
    best_value: float | None
    n_trials: int
    #: Totals of the trials trained in this study: copied trials (``--warm-start``) cost it nothing.
    epochs_total: int
    seconds_total: float
    #: How many of ``n_trials`` were copied from other studies by ``--warm-start``.
    copied: int = 0


@dataclass(frozen=True)
class TrialCopy:
    """One trial of another study to copy into a study (``--warm-start``): the source trial, its study's
    name, and its parameters as the new study's space writes them."""

    source: TrialRecord
    source_study: str
    params: dict[str, Any]
    #: What makes the copy the same work as a proposal of the new study's engine (its configuration key);
    #: None: the params.
    identity: Any = None

    @property
    def origin(self) -> tuple[str, int]:
        """(study, number) the copy names: the original trial's, when the source is itself a copy."""
        if self.source.copied_from_study is not None and self.source.copied_from_number is not None:
            return self.source.copied_from_study, self.source.copied_from_number
        return self.source_study, self.source.number


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
