"""Models retrained from a trial's configuration and exported (``hpsearch retrain``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .records import ModelRecord
from .row_records import model_record
from .store_base import StoreBase
from .tables import ModelRow, utcnow


class RetrainedModels(StoreBase):
    """The model methods of :class:`~hpsearch.storage.repository.Storage`."""

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
                return model_record(row)
        except IntegrityError as e:  # the foreign key: no such study
            with self._read() as session:
                raise self._study_id_missing(session, study_id) from e

    def list_models(self, study_id: int) -> list[ModelRecord]:
        """The study's retrained models, oldest first."""
        with self._read() as session:
            query = select(ModelRow).where(ModelRow.study_id == study_id).order_by(ModelRow.id)
            rows = session.scalars(query)
            return [model_record(row) for row in rows]
