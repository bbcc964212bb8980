"""What every part of :class:`~hpsearch.storage.repository.Storage` stands on.

The engine and the four kinds of transaction the parts run their statements in (ORM session or Core
connection, reading or writing), the reads several parts share, and the errors that say why an id
matched nothing. Every method is one short transaction on its own connection, so a Storage is safe to
use from several processes (and threads) on one database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

from sqlalchemy import ColumnElement, Connection, Engine, Select, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from .connection import WRITE_OPTION, translate_error
from .errors import StudyNotFoundError, TrialNotFoundError, TrialNotRunningError
from .locator import StoreLocation
from .records import TrialState
from .row_records import curves_from
from .tables import StudyRow, TrialEpochRow, TrialRow


class StoreBase:
    """The connection to one database that the parts of Storage share; not used on its own.

    Args:
        engine: the SQLAlchemy engine, built by :func:`~hpsearch.storage.repository.open_storage`
            after the schema was checked.
        location: where the store lives (a path or URL is parsed here), the engine's URL among it.
    """

    def __init__(self, engine: Engine, location: StoreLocation | str) -> None:
        #: Where the store lives: its URL, dialect, SQLite file and the forms that may be shown.
        self.location = StoreLocation.of(location)
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._where = self.location.shown

    @property
    def url(self) -> str:
        """The URL the store was opened with (a plain path as ``sqlite:///path``)."""
        return self.location.url

    @property
    def where(self) -> str:
        """What messages call this database: its file for SQLite, else its URL with ``***`` for a password."""
        return self._where

    def __repr__(self) -> str:
        return f"Storage({self._where!r})"

    def close(self) -> None:
        """Close the engine's pooled connections; the Storage is not used after this."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except DBAPIError as e:
            raise translate_error(e, self.location, writing=False) from e

    @contextmanager
    def _read_rows(self) -> Iterator[Connection]:
        # Core rows, not a Session: listing 100k trials should not pay for ORM row processing.
        try:
            with self._engine.connect() as connection:
                yield connection
        except DBAPIError as e:
            raise translate_error(e, self.location, writing=False) from e

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
                yield session
        except IntegrityError:
            raise  # callers turn constraint violations into their own errors
        except DBAPIError as e:
            raise translate_error(e, self.location, writing=True) from e

    @contextmanager
    def _write_rows(self) -> Iterator[Connection]:
        # Core statements in one transaction, for the hot write paths: no Session to build and flush.
        try:
            with self._write_engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except DBAPIError as e:
            raise translate_error(e, self.location, writing=True) from e

    # -- reads shared by the parts ----------------------------------------------------------------

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
            return curves_from(
                connection.execute(
                    select(TrialEpochRow.trial_id, TrialEpochRow.metrics)
                    .where(condition)
                    .order_by(TrialEpochRow.trial_id, TrialEpochRow.epoch)
                )
            )

    # -- why an id matched nothing ----------------------------------------------------------------

    def _study_id_missing(self, session: Session | Connection, study_id: int) -> StudyNotFoundError:
        existing = session.scalars(select(StudyRow.name).order_by(StudyRow.name)).all()
        return StudyNotFoundError(f"#{study_id}", self._where, existing)

    def _not_running(self, session: Session | Connection, trial_id: int) -> Exception:
        """Why a conditional write to a RUNNING trial matched nothing."""
        row = session.execute(select(TrialRow.number, TrialRow.state).where(TrialRow.id == trial_id)).first()
        if row is None:
            return TrialNotFoundError(f"no trial with id {trial_id} in {self._where}")
        return TrialNotRunningError(trial_id, row.number, row.state)
