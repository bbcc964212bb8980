"""A study's settings as one typed, frozen value: :class:`StudySettings`.

A study records its settings (algorithm, seed, budget, engine options, ...) as a JSON object in its row.
``StudySettings`` is that object read once (``from_record``) and written back (``to_record``) without
changing a byte: the keys the record had, in its order, with the values it had. Old databases load (a
key that was not recorded yet reads as its field's default), and a key this code does not know (the
KerasTuner oracle's saved state, or one a newer version wrote) is kept as it was, in ``extra``.

Code reads attributes (``settings.seed``); ``with_changes`` gives a new value with some settings changed,
as merging them into the stored JSON does (a key already there keeps its place, a new one goes last).

This module imports nothing of hpsearch's upper layers, so every layer may read a study's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: Settings key of the studies a study was warm-started from (``--warm-start``).
WARM_START_KEY = "warm_start"
#: Settings key of the numerical environment recorded at creation (``hpsearch.training.reproducibility``).
ENVIRONMENT_KEY = "environment"
#: Settings key of ``--checkpoint-dir`` (``hpsearch.training.checkpoints``).
CHECKPOINT_DIR_KEY = "checkpoint_dir"
#: Consecutive failed trials that stop a search when ``--max-failures`` is not given.
DEFAULT_MAX_FAILURES = 5


@dataclass(frozen=True)
class StudySettings:
    """What a study runs with, one attribute per recorded setting (None: not given, the default applies).

    Build it with :meth:`from_record` (a stored study's settings, or the dict a new study is about to
    record) and write it with :meth:`to_record`.
    """

    #: The engine's algorithm (``tpe``, ``grid``, ``hyperband``, ...).
    algorithm: str | None = None
    #: ``--seed``: data split, samplers, training seeds (``hpsearch.seeds``).
    seed: int = 0
    #: The trial budget (None: a timeout alone bounds the search).
    trials: int | None = None
    #: ``--timeout``: a per-session wall-clock limit in seconds.
    timeout_s: float | None = None
    #: ``--max-failures``: consecutive failed trials that stop the search.
    max_failures: int = DEFAULT_MAX_FAILURES
    #: ``--class-weight`` (``balanced``) or None.
    class_weight: str | None = None
    #: ``--stale-after``: seconds without a heartbeat before a RUNNING trial counts as abandoned.
    stale_after_s: float | None = None
    #: ``--checkpoint-dir``, absolute (None: next to the SQLite file).
    checkpoint_dir: str | None = None
    # Engine options (``hpsearch.engines.base.ENGINE_OPTIONS`` and ``--pruner``): recorded when given.
    cv: int | None = None
    jobs: int | None = None
    max_epochs: int | None = None
    factor: int | None = None
    dask: str | None = None
    #: A count, or a word the engine reads (``smallest``, ``exhaust``).
    min_resources: int | str | None = None
    halving_resource: str | None = None
    n_candidates: int | str | None = None
    pack: int | None = None
    #: ``--population``: ``auto``, ``off`` or a count (hpsearch.training.population).
    population: int | str | None = None
    trainer: str | None = None
    backend: str | None = None
    pruner: str | None = None
    #: ``--warm-start``: the studies whose completed trials were copied in.
    warm_start: tuple[str, ...] | None = None
    #: Where the space was read from, for messages about a stored space.
    space_source: str | None = None
    #: The numerical environment at creation (``hpsearch.training.reproducibility``).
    environment: Mapping[str, Any] | None = None
    #: Keys this code has no field for, with their stored values (engine state, newer versions' keys).
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The record's keys in its order: ``to_record`` writes exactly these (not compared: order only).
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StudySettings:
        """The settings of a stored study (or of the dict a new study will record).

        Args:
            record: the settings JSON object as stored; keys without a field go to ``extra``.

        Returns:
            The settings; missing keys take their field's default.

        Raises:
            TypeError: ``record`` is not a mapping (a corrupt row; the storage layer refuses those).
        """
        if isinstance(record, StudySettings):
            return record
        if not isinstance(record, Mapping):
            raise TypeError(f"study settings must be a JSON object, not {type(record).__name__}")
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in record.items():
            if key in _FIELDS:
                known[key] = tuple(value) if key == WARM_START_KEY and isinstance(value, list) else value
            else:
                extra[key] = value
        return cls(**known, extra=extra, key_order=tuple(record))

    def to_record(self) -> dict[str, Any]:
        """The JSON object to store: the keys read (or set) in their order, values as given.

        Returns:
            A new dict; ``from_record(s.to_record()) == s`` and, for a stored ``record``,
            ``from_record(record).to_record() == record`` with the same key order.
        """
        return {key: self.value_of(key) for key in self.key_order}

    def with_changes(self, changes: Mapping[str, Any]) -> StudySettings:
        """These settings with ``changes`` applied as the stored JSON merges them: a key already there
        keeps its place, a new one goes last.

        Args:
            changes: settings keys (field names or ``extra`` keys) and their new values.

        Returns:
            A new StudySettings; this one is unchanged.
        """
        return StudySettings.from_record({**self.to_record(), **changes})

    @property
    def engine_options(self) -> dict[str, Any]:
        """The engine options that were given (``cv``, ``jobs``, ... and ``pruner``), by settings key."""
        return {key: self.value_of(key) for key in self.key_order if key in _ENGINE_OPTION_FIELDS}

    def recorded(self, key: str) -> bool:
        """Whether the stored record holds settings key ``key`` (a study made before the key existed
        does not, and reads the field's default)."""
        return key in self.key_order

    def value_of(self, key: str) -> Any:
        """The stored JSON value of settings key ``key`` (a field, or a key kept in ``extra``).

        Raises:
            KeyError: the record has no such key.
        """
        if key not in self.key_order:
            raise KeyError(key)
        if key in _FIELDS:
            value = getattr(self, key)
            # JSON has lists, not tuples: the record holds what it held.
            return list(value) if key == WARM_START_KEY and value is not None else value
        return self.extra[key]

    # ``frozen`` would hash the ``extra`` dict; settings are values to read, not keys.
    __hash__ = None  # type: ignore[assignment]


#: Fields that hold a recorded setting (the bookkeeping fields are not settings keys).
_FIELDS = frozenset(f.name for f in fields(StudySettings)) - {"extra", "key_order"}
#: Engine options among the fields (``hpsearch.engines.base.ENGINE_OPTIONS`` and ``pruner``).
_ENGINE_OPTION_FIELDS = frozenset({"cv", "jobs", "max_epochs", "factor", "dask", "min_resources",
                                   "halving_resource", "n_candidates", "pack", "trainer", "backend",
                                   "pruner", "population"})
