"""Upper bounds on what one input may make hpsearch allocate or start.

Each limit has a documented default and an environment variable that raises (or lowers) it, read when the
limit is checked, so a server or a batch job sets it once for every command it starts. A value over a limit
is refused before anything is created, with one sentence that names the limit and how to raise it.

The bounds on a space file (its size, YAML aliases, grid size) live in ``hpsearch.spaces.limits``, below this
layer; ``GRID_CANDIDATES`` is re-exported here so every limit has one import.

=========================  ===============================  ================================
limit                      default                          variable
=========================  ===============================  ================================
worker processes           4 per CPU core (at least 4)      HPSEARCH_MAX_WORKERS
trials of a budget         1,000,000                        HPSEARCH_MAX_TRIALS
grid candidates            1,000,000                        HPSEARCH_MAX_GRID
request body (serve)       1 MiB                            HPSEARCH_MAX_REQUEST_BYTES
space file                 1 MiB                            HPSEARCH_MAX_SPACE_BYTES
YAML aliases in a space    100                              HPSEARCH_MAX_YAML_ALIASES
space nodes, expanded      100,000                          HPSEARCH_MAX_SPACE_NODES
space nesting depth        64                               HPSEARCH_MAX_SPACE_DEPTH
data given in memory       256 MiB, encoded                 HPSEARCH_MAX_DATA_BYTES
=========================  ===============================  ================================
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hpsearch.spaces.limits import GRID_CANDIDATES, SPACE_FILE_BYTES, YAML_ALIASES
from hpsearch.spaces.limits import Limit as _SpaceLimit

from .errors import DataError, UsageError
from .settings import StudySettings

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace

__all__ = ["DATA_BYTES", "GRID_CANDIDATES", "REQUEST_BYTES", "SEED_MAX", "SPACE_FILE_BYTES", "TRIALS",
           "WORKERS", "YAML_ALIASES", "DataLimit", "Limit", "check_seed", "listing_problem"]


@dataclass(frozen=True)
class Limit(_SpaceLimit):
    """One bound of the run-time layer (``value()``, ``check(value, given_as)``); refuses with UsageError."""

    error: ClassVar[type[Exception]] = UsageError


def _default_workers() -> int:
    # Each worker is a process that imports TensorFlow (about 0.5 GB): a few per core is already more
    # than a machine trains well with, and far below what would exhaust its memory or process table.
    return max(4, 4 * (os.cpu_count() or 1))


#: Worker processes one command (or one launch of ``hpsearch serve``) may start.
WORKERS = Limit("worker processes", _default_workers(), "HPSEARCH_MAX_WORKERS")
#: Trials a budget (``--trials``) may ask for.
TRIALS = Limit("trials", 1_000_000, "HPSEARCH_MAX_TRIALS")
#: Bytes of a request body ``hpsearch serve`` reads; a larger body is answered 413.
REQUEST_BYTES = Limit("bytes", 1_048_576, "HPSEARCH_MAX_REQUEST_BYTES")


@dataclass(frozen=True)
class DataLimit(Limit):
    """A bound on data given in memory; refuses with DataError, as any other problem of the data."""

    error: ClassVar[type[Exception]] = DataError


#: Bytes of data given in memory (a DataFrame as gzip'd CSV, arrays as NPZ), which is kept in the study's
#: database: every worker reads it back from there, and SQLite and PostgreSQL cap one value at 1 GB.
DATA_BYTES = DataLimit("bytes", 256 * 1_048_576, "HPSEARCH_MAX_DATA_BYTES")

#: The largest seed: NumPy's and Optuna's samplers take a 32-bit unsigned seed.
SEED_MAX = 2**32 - 1


def check_seed(seed: int | None, given_as: str = "--seed") -> None:
    """Refuse a seed the samplers would reject only after the study exists.

    Args:
        seed: the seed asked for (None: the default, 0).
        given_as: how the user gave it, named in the message.

    Raises:
        UsageError: ``seed`` is outside 0..2**32-1.
    """
    if seed is not None and not 0 <= seed <= SEED_MAX:
        shown = str(seed) if abs(seed) < 10**30 else f"a {len(str(abs(seed)))}-digit number"
        raise UsageError(f"{given_as} must be an integer from 0 to {SEED_MAX}, but got {shown}")


def check_seconds(flag: str, value: float | None) -> None:
    """Refuse a duration that is not a positive, finite number of seconds.

    Args:
        flag: how the user gave it (``--timeout``), named in the message.
        value: the duration asked for (None: not given, nothing to check).

    Raises:
        UsageError: ``value`` is zero, negative, infinite or NaN.
    """
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive, finite number of seconds, but got {value}")


#: Algorithms that list every candidate of the grid (Optuna's GridSampler, a halving grid's first rung)
#: or whose plan is the whole grid (scikit-learn's grid).
_GRID_ALGORITHMS = ("grid", "halving-grid")
#: Engines that list every value of a stepped range (a KerasTuner Choice, a scikit-learn list to draw from).
_LISTING_ENGINES = ("keras-tuner", "sklearn")


def listing_problem(space: SearchSpace, settings: StudySettings, engine: str = "") -> str | None:
    """The sentence refusing a grid, or a listed range, over ``GRID_CANDIDATES``, or None.

    Sizes are counted, never listed, so the check itself costs nothing however large the space. A run
    raises the sentence as a UsageError before its study exists; ``--dry-run`` prints it as a warning.

    Args:
        space: the validated space.
        settings: the run's settings (``algorithm`` decides whether the whole grid is listed).
        engine: the engine's name (KerasTuner and scikit-learn list every value of a stepped range).

    Returns:
        None, or one sentence naming the space, the count, the limit and its variable.
    """
    from hpsearch.spaces import SpaceError

    if settings.algorithm in _GRID_ALGORITHMS:
        try:
            size = space.grid_size()
        except SpaceError:
            return None  # a parameter without finite values: the engine's check names it
        return GRID_CANDIDATES.message(size, f"the grid of space {space.source}")
    if engine in _LISTING_ENGINES:
        for name, param in space.params.items():
            if getattr(param, "step", None) is None:
                continue
            count = param.value_count()
            if count is not None and count > GRID_CANDIDATES.value():
                return (f"{space.source}: parameter '{name}' lists {count} values (high - low) / step, "
                        f"over the limit of {GRID_CANDIDATES.value()} for engine {engine}; give a larger "
                        f"`step`, or set {GRID_CANDIDATES.variable} to raise it")
    return None
