"""The trial recorder: the only path from an engine to storage.

The trial runner (:mod:`hpsearch.training.runner`) calls ``start`` when it claims a proposed configuration,
writes
every epoch as it ends, and closes the trial with ``complete``, ``prune`` or ``fail``. Each write is its own
short transaction, so a ``kill -9`` at any instant never loses a finished trial. Epochs are written in
batches, at most ``EPOCH_FLUSH_S`` apart and with the trial's final state: a trial of ten fast epochs
costs the store two or three transactions instead of twelve, and a kill loses at most the last second of
epochs (pruning never waits for them: Optuna reads its own intermediate values).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from hpsearch.storage import Storage, StudyRecord, TrialRecord, TrialState

#: Longest time an ended epoch waits in memory before it is written (also refreshes the heartbeat).
EPOCH_FLUSH_S = 1.0


def current_worker() -> str:
    """``host:pid`` of this process, stored on every trial so that ``resume`` can tell a dead worker's
    trial (safe to fail and retry) from one that another live process is still training."""
    # Recomputed rather than cached: a forked worker process has a different pid.
    return f"{socket.gethostname()}:{os.getpid()}"


_PROCESS: list[Any] = []  # [pid, psutil.Process]: building the Process object costs more than reading it


def resident_memory_mb() -> float:
    import psutil

    if not _PROCESS or _PROCESS[0] != os.getpid():  # a forked child measures itself
        _PROCESS[:] = [os.getpid(), psutil.Process()]
    return _PROCESS[1].memory_info().rss / 2**20


def plain_metrics(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """Keras logs hold numpy/tensor scalars; storage wants plain floats."""
    return {str(name): float(value) for name, value in (logs or {}).items()}


class TrialRecorder:
    """Writes one study's trials through the storage repository.

    ``on_finish`` listeners (progress bar, budget checks) are told of every finished trial, whichever
    engine ran it.
    """

    def __init__(self, storage: Storage, study: StudyRecord) -> None:
        self.storage = storage
        self.study = study
        self._listeners: list[Callable[[TrialRecord], None]] = []
        self._peak_mb: dict[int, float] = {}
        #: Epochs ended but not yet written, per trial id, and when each trial was last written.
        self._pending: dict[int, list[tuple[int, dict[str, float], int | None]]] = {}
        self._written_at: dict[int, float] = {}

    def on_finish(self, listener: Callable[[TrialRecord], None]) -> None:
        self._listeners.append(listener)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(
        self,
        params: Mapping[str, Any],
        *,
        engine_trial_id: str | None = None,
        retry_of: int | None = None,
        parent_number: int | None = None,
        identity: Any = None,
        budget: int | None = None,
    ) -> TrialRecord:
        """Claim a RUNNING trial; refused (BudgetReachedError, DuplicateTrialError) when the budget has no
        room or the configuration (``identity``, default the params) was tried before in this study."""
        trial = self.storage.start_trial(
            self.study.id,
            dict(params),
            engine_trial_id=engine_trial_id,
            worker=current_worker(),
            retry_of=retry_of,
            parent_number=parent_number,
            identity=identity,
            budget=budget,
            unique=True,
        )
        self._peak_mb[trial.id] = resident_memory_mb()
        self._written_at[trial.id] = time.monotonic()
        return trial

    def epoch(
        self, trial: TrialRecord, epoch: int, logs: Mapping[str, Any] | None, *, fold: int | None = None
    ) -> None:
        """One epoch's logs; ``fold`` for a trial scored by cross-validation (one model per fold).

        Written with the next batch (see the module docstring); a refused or failed write raises here, in
        the training thread, so the trial stops as soon as the store says so."""
        self._pending.setdefault(trial.id, []).append((epoch, plain_metrics(logs), fold))
        self._peak_mb[trial.id] = max(self._peak_mb.get(trial.id, 0.0), resident_memory_mb())
        if time.monotonic() - self._written_at.get(trial.id, 0.0) >= EPOCH_FLUSH_S:
            self.flush(trial)

    def flush(self, trial: TrialRecord) -> None:
        """Write the trial's pending epochs now."""
        pending = self._pending.pop(trial.id, [])
        self._written_at[trial.id] = time.monotonic()
        self.storage.record_epochs(trial.id, pending)

    def partial(self, trial: TrialRecord, metrics: Mapping[str, float]) -> None:
        """Results that arrive while the trial runs (a finished fold), committed now so a crash keeps
        them; ``complete``/``fail`` write the full set."""
        self.flush(trial)
        self.storage.merge_trial_metrics(trial.id, plain_metrics(metrics))
        self._peak_mb[trial.id] = max(self._peak_mb.get(trial.id, 0.0), resident_memory_mb())

    def complete(self, trial: TrialRecord, value: float, metrics: Mapping[str, float]) -> TrialRecord:
        return self._finish(trial, TrialState.COMPLETE, value=value, metrics=metrics)

    def prune(self, trial: TrialRecord, value: float | None, metrics: Mapping[str, float]) -> TrialRecord:
        return self._finish(trial, TrialState.PRUNED, value=value, metrics=metrics)

    def fail(
        self,
        trial: TrialRecord,
        error: str,
        *,
        interrupted: bool = False,
        metrics: Mapping[str, float] | None = None,
    ) -> TrialRecord:
        return self._finish(trial, TrialState.FAILED, error=error, interrupted=interrupted, metrics=metrics)

    def _finish(
        self,
        trial: TrialRecord,
        state: TrialState,
        *,
        value: float | None = None,
        metrics: Mapping[str, float] | None = None,
        error: str | None = None,
        interrupted: bool = False,
    ) -> TrialRecord:
        if value is not None and not math.isfinite(value):
            value = None
        peak = max(self._peak_mb.pop(trial.id, 0.0), resident_memory_mb())
        self._written_at.pop(trial.id, None)
        finished = self.storage.finish_trial(
            trial.id,
            state,
            value=value,
            metrics=dict(metrics or {}),
            error=error,
            interrupted=interrupted,
            peak_memory_mb=round(peak, 1),
            epochs=self._pending.pop(trial.id, []),
            started_at=trial.started_at,
        )
        for listener in self._listeners:
            listener(finished)
        return finished
