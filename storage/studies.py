"""Studies: creating one, finding one, listing all with their totals, and updating its settings."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .conventions import EPOCHS_RESTORED_METRIC
from .errors import StudyExistsError, StudyNotFoundError
from .records import StudyRecord, StudySummary, TrialState
from .row_records import study_record
from .store_base import StoreBase
from .tables import StudyRow, TrialRow, utcnow

DIRECTIONS = ("minimize", "maximize")


class StudyOperations(StoreBase):
    """The study methods of :class:`~hpsearch.storage.repository.Storage`."""

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
                return study_record(row)
        except IntegrityError as e:
            raise StudyExistsError(name, self._where) from e

    def get_study(self, name: str) -> StudyRecord:
        """The study named ``name``; StudyNotFoundError (listing the studies there are) if none is."""
        with self._read() as session:
            row = session.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()
            if row is None:
                existing = session.scalars(select(StudyRow.name).order_by(StudyRow.name)).all()
                raise StudyNotFoundError(name, self._where, existing)
            return study_record(row)

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
                    study=study_record(row),
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
            return study_record(row)

    def touch_study(self, study_id: int) -> None:
        """Set the study's ``updated_at`` to now; StudyNotFoundError if there is no such study."""
        with self._write() as session:
            result = session.execute(
                update(StudyRow).where(StudyRow.id == study_id).values(updated_at=utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise self._study_id_missing(session, study_id)

    def _study_row(self, session: Session, study_id: int) -> StudyRow:
        row = session.get(StudyRow, study_id)
        if row is None:
            raise self._study_id_missing(session, study_id)
        return row
