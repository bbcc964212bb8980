"""Reading a study's trials: one by number, listed by state and order, the best, and counts."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from .errors import TrialNotFoundError
from .records import TrialRecord, TrialState
from .row_records import trial_record, trial_select
from .store_base import StoreBase
from .tables import StudyRow, TrialRow

TRIAL_ORDERS = ("number", "value", "duration", "started")


class TrialQueries(StoreBase):
    """The trial queries of :class:`~hpsearch.storage.repository.Storage`."""

    def get_trial(self, study_id: int, number: int, *, with_epochs: bool = False) -> TrialRecord:
        """Trial ``number`` of a study, with its per-epoch curves when ``with_epochs``.

        Raises StudyNotFoundError for no such study, TrialNotFoundError (saying which numbers there
        are) for no such trial.
        """
        query = trial_select().where(TrialRow.study_id == study_id, TrialRow.number == number)
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
        return trial_record(rows[0], curves.get(rows[0][0]))

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
        query = trial_select().where(TrialRow.study_id == study_id)
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
        return [trial_record(row, curves.get(row[0])) for row in rows]

    def best_trials(self, study_id: int, k: int = 1) -> list[TrialRecord]:
        """The ``k`` best COMPLETE trials with a value, by the study's direction; ties by number."""
        with self._read() as session:
            direction = session.scalar(select(StudyRow.direction).where(StudyRow.id == study_id))
            if direction is None:
                raise self._study_id_missing(session, study_id)
        key = TrialRow.value.asc() if direction == "minimize" else TrialRow.value.desc()
        query = (
            trial_select()
            .where(
                TrialRow.study_id == study_id,
                TrialRow.state == TrialState.COMPLETE.value,
                TrialRow.value.is_not(None),
            )
            .order_by(key, TrialRow.number)
            .limit(k)
        )
        return [trial_record(row) for row in self._rows(query, None)]

    def count_trials(self, study_id: int) -> dict[TrialState, int]:
        """How many trials of the study are in each state (every state present, 0 for none)."""
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
        """The study's RUNNING trials, by number."""
        return self.list_trials(study_id, states=[TrialState.RUNNING])
