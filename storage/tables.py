"""SQLAlchemy declarative tables of the trial store.

Every table is prefixed ``hp_`` and the Alembic version table is ``hp_alembic_version`` because Optuna
keeps its own tables (``studies``, ``trials``, ``alembic_version``, ...) in the same database, so that
the ``optuna`` CLI and optuna-dashboard can open our file.

Any change here needs a new revision under ``migrations/versions``; the tables are never created with
``metadata.create_all`` outside tests, so the migration is what a database actually gets.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

VERSION_TABLE = "hp_alembic_version"
TABLE_PREFIX = "hp_"

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_json(value: Any) -> Any:
    """Replace non-finite floats by strings: standard JSON has no NaN and PostgreSQL's JSON rejects it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): encode_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_json(v) for v in value]
    # numpy scalars (float32 metrics from Keras) are not JSON-serialisable; their item() is.
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return encode_json(item())
    return value


def decode_metrics(value: Any) -> Any:
    """Inverse of :func:`encode_json` for columns that hold numbers only (metrics)."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, dict):
        # Most metric dicts are all numbers: skip rebuilding them (this runs once per listed trial).
        if all(type(v) is float or type(v) is int for v in value.values()):
            return value
        return {k: decode_metrics(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_metrics(v) for v in value]
    return value


class SafeJSON(TypeDecorator[Any]):
    """JSON that accepts NaN/inf and numpy scalars on the way in."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else encode_json(value)


class MetricsJSON(SafeJSON):
    """JSON of metric values: the strings "nan"/"inf"/"-inf" come back as floats.

    Only metric columns decode, because in params or settings such a string may be a real choice.
    """

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else decode_metrics(value)


class _SQLiteUTCDateTime(sqlite.DATETIME):
    """SQLite DATETIME read with ``fromisoformat``: several times faster than SQLAlchemy's regex parser,
    which matters when a listing reads three datetimes for each of 100k trials."""

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        fromisoformat = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            return None if value is None else fromisoformat(value).replace(tzinfo=UTC)

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones and returns naive values, so UTC is stored naive there and re-attached on
    read; PostgreSQL keeps ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteUTCDateTime())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "hp_studies"
    # The unique name is what makes two processes racing to create one study safe.
    __table_args__ = (UniqueConstraint("name", name="uq_hp_studies_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    engine: Mapped[str] = mapped_column(String(64), nullable=False)
    algorithm: Mapped[str] = mapped_column(String(64), nullable=False)
    objective: Mapped[str] = mapped_column(String(128), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    space: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    dataset: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    versions: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class TrialRow(Base):
    __tablename__ = "hp_trials"
    __table_args__ = (
        # Also the race guard: two writers computing the same next number cannot both commit.
        UniqueConstraint("study_id", "number", name="uq_hp_trials_study_number"),
        Index("ix_hp_trials_study_state", "study_id", "state"),
        Index("ix_hp_trials_study_value", "study_id", "value"),
        # Finds an earlier trial of the same configuration when a new one is claimed (no duplicates).
        Index("ix_hp_trials_study_config", "study_id", "config_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("hp_studies.id", name="fk_hp_trials_study", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    engine_trial_id: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    epochs_run: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    retry_of: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(256), nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    parent_number: Mapped[int | None] = mapped_column(Integer)
    #: sha256 of what makes two trials the same work (the configuration, and for a Hyperband round its
    #: round); NULL on rows written before schema 0002.
    config_key: Mapped[str | None] = mapped_column(String(64))
    #: A trial copied from another study by ``--warm-start``: that study's name and the trial's number
    #: there (the original's, for a copy of a copy). Not a foreign key: the source study may be deleted
    #: later, and the copy (its params, scores and curves) stands on its own. NULL: trained here.
    copied_from_study: Mapped[str | None] = mapped_column(String(512))
    copied_from_number: Mapped[int | None] = mapped_column(Integer)


class TrialEpochRow(Base):
    __tablename__ = "hp_trial_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch", name="uq_hp_trial_epochs_trial_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("hp_trials.id", name="fk_hp_trial_epochs_trial", ondelete="CASCADE"), nullable=False
    )
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ModelRow(Base):
    __tablename__ = "hp_models"
    __table_args__ = (Index("ix_hp_models_study", "study_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("hp_studies.id", name="fk_hp_models_study", ondelete="CASCADE"), nullable=False
    )
    trial_number: Mapped[int] = mapped_column(Integer, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(MetricsJSON, nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    epochs_run: Mapped[int] = mapped_column(Integer, nullable=False)
    stop_reason: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class StoredDataRow(Base):
    """Data given in memory (a DataFrame, arrays), kept so that a resume, a worker process or a retrain on
    any machine reloads exactly what the study was created with. Keyed by the sha256 of the payload, so
    storing the same data twice keeps one row; never deleted with a study, since several may share it."""

    __tablename__ = "hp_stored_data"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: How the payload is encoded: ``csv.gz`` (a DataFrame as gzip'd CSV text) or ``npz`` (NumPy arrays,
    #: read back with ``allow_pickle=False``). Never a pickle.
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


# The tables themselves for the statements on every trial's path: Core DML on a Table skips the ORM's
# per-statement bookkeeping, a third of a claim's CPU time (scripts/bench_store.py).
TRIALS = TrialRow.__table__
STUDIES = StudyRow.__table__
EPOCHS = TrialEpochRow.__table__
