"""Trials copied from other studies (``--warm-start``): adding them to a study, and listing them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, literal, select

from .conventions import config_key
from .records import TrialCopy, TrialRecord, TrialState
from .row_records import trial_record, trial_select
from .store_base import StoreBase
from .tables import StudyRow, TrialEpochRow, TrialRow, utcnow


class TrialCopies(StoreBase):
    """The warm-start methods of :class:`~hpsearch.storage.repository.Storage`."""

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
        query = trial_select().where(TrialRow.id.in_(ids)).order_by(TrialRow.number)
        return [trial_record(row) for row in self._rows(query, None)]

    def copied_trials(self, study_id: int, *, with_epochs: bool = False) -> list[TrialRecord]:
        """The study's trials copied from other studies (``--warm-start``), by number."""
        query = (trial_select()
                 .where(TrialRow.study_id == study_id, TrialRow.copied_from_study.is_not(None))
                 .order_by(TrialRow.number))
        rows = self._rows(query, None)
        curves = self._curves_for(rows, study_id, None) if with_epochs else {}
        return [trial_record(row, curves.get(row[0])) for row in rows]
