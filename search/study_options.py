"""What ``hpsearch run`` (and ``resume``, ``join``) was asked to do, before anything is checked against a
study: the options as the CLI hands them over, their documented defaults, and how trials are isolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace

from .errors import UsageError
from .limits import WORKERS

if TYPE_CHECKING:
    from .data import InMemoryData
    from .engines.base import Engine

DEFAULT_SPACE = "default"
DEFAULT_DATA = "digits"
DEFAULT_STORAGE = "sqlite:///hpsearch.db"
#: A worker is replaced after this many trials: Keras leaks 7-8 MB per trial inside one process.
DEFAULT_RECYCLE_AFTER = 50
#: ... or once its resident memory passes this many MiB.
DEFAULT_MAX_WORKER_MEMORY_MB = 4096.0


@dataclass
class RunOptions:
    """What ``hpsearch run`` was asked to do; ``None`` means the documented default."""

    #: A preset name or space file, or a space already loaded (the Python API's dict or SearchSpace).
    space: str | SearchSpace | None = None
    engine: str = "optuna"
    algorithm: str | None = None
    #: A builtin or bundled name, a file path, or data given in memory (``hpsearch.data.in_memory_data``).
    data: str | InMemoryData = DEFAULT_DATA
    target: str | None = None
    #: Feature columns to leave out (``--drop``).
    drop: list[str] = field(default_factory=list)
    task: str | None = None
    study: str | None = None
    trials: int | None = None
    timeout_s: float | None = None
    storage: str = DEFAULT_STORAGE
    seed: int | None = None  # None: 0
    pruner: str | None = None  # optuna only; None: the engine's default (median)
    class_weight: str | None = None
    sample_weight: str | None = None  # a CSV column of per-row weights
    max_failures: int | None = None  # None: 5
    stale_after_s: float | None = None  # None: DEFAULT_STALE_AFTER_S
    checkpoint_dir: str | None = None  # None: next to the SQLite file (hpsearch.training.checkpoints)
    resume: bool = False
    dry_run: bool = False
    progress: bool = True
    #: Studies whose completed trials seed this new one (``--warm-start A,B``); see hpsearch.warm_start.
    warm_start: list[str] = field(default_factory=list)
    isolation: Isolation = field(default_factory=lambda: Isolation())
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Isolation:
    """How trials are run: in K supervised worker processes (default) or in this process."""

    workers: int = 1
    recycle_after: int | None = DEFAULT_RECYCLE_AFTER
    memory_limit_mb: float | None = DEFAULT_MAX_WORKER_MEMORY_MB
    in_process: bool = False

    def check(self, engine: Engine) -> None:
        """Refuse an isolation ``engine`` cannot run, before any worker process starts.

        Raises:
            UsageError: a worker count below 1 or over the ``WORKERS`` limit, several workers for an engine
                that runs one at a time or together with ``--in-process``, or a recycle count or memory
                limit that is not positive.
        """
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, but got {self.workers}")
        # Checked before any process starts: each worker imports TensorFlow (about 0.5 GB).
        WORKERS.check(self.workers, "--workers")
        if self.workers > 1 and not engine.parallel_workers:
            raise UsageError(
                f"--workers {self.workers} needs an engine that coordinates several workers (optuna); "
                f"engine '{engine.name}' runs one worker at a time (train on several machines with --dask)"
            )
        if self.workers > 1 and self.in_process:
            raise UsageError("--in-process runs one trial at a time; it cannot be combined with --workers")
        if self.recycle_after is not None and self.recycle_after < 1:
            raise UsageError(f"--recycle-after must be at least 1, but got {self.recycle_after}")
        if self.memory_limit_mb is not None and not (
            math.isfinite(self.memory_limit_mb) and self.memory_limit_mb > 0
        ):
            raise UsageError(f"--max-worker-memory must be a positive number of MiB, but got "
                             f"{self.memory_limit_mb}")
