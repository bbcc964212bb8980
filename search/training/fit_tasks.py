"""A trial's fit as a picklable task, for an executor that trains it in another process (a Dask worker).

The trial runner's ``Attempt`` stays in the process that claimed the trial: it builds the ``FitTask``
(``Attempt.fit_task``: configuration, seed, epoch range and the same in-trial checkpoint a local fit
keeps), the executor runs ``run_fit_task`` wherever it trains and sends the ``FitReport`` back, and
``Attempt.take`` hands every epoch to the trial's recorder (the one sink every epoch ends in) and returns
the fit's ``FitResult``, as ``Attempt.fit`` does for a local fit. A fit in another process therefore
records the same epoch rows, and continues from the same checkpoint when its folder is shared.

A Hyperband round's extras travel with the task: the weights of the round it continues (as bytes) and
whether to keep its best epoch's weights (sent back as bytes, written by the engine).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fit import EpochRecorderCallback, FitResult, NonFiniteLossError, fit_config
from .recorder import plain_metrics
from .weights_files import best_weights_keeper, parent_loader

if TYPE_CHECKING:
    from ..data import Dataset
    from .checkpoints import EpochCheckpoint


@dataclass(frozen=True)
class FitTask:
    """One fit of a trial's configuration, everything but the data, picklable."""

    config: Mapping[str, Any]
    objective: str
    direction: str
    #: The trial's training seed (``Attempt.seed``).
    seed: int
    #: Last epoch (exclusive) to train; None: the configuration's ``epochs``.
    epochs: int | None = None
    initial_epoch: int = 0
    #: Subtracted from Keras' epoch numbers in the recorded epochs (a Hyperband round counts its own).
    epoch_offset: int = 0
    #: The in-trial checkpoint to continue from and rewrite (None: none, as for a short fit).
    checkpoint: EpochCheckpoint | None = None
    #: ``best-weights.npz`` bytes of the round this one continues, and where they came from (for errors).
    parent_weights: bytes | None = None
    parent_source: str | None = None
    #: Send back the best epoch's weights (a later Hyperband round may continue this one).
    keep_best: bool = False


@dataclass(frozen=True)
class FitReport:
    """What a fit task sends back: its epochs, then its result or why its loss diverged."""

    #: (epoch, plain metrics), numbered as the trial records them, restored epochs first.
    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    result: FitResult | None = None
    #: ``NonFiniteLossError``'s message, when the loss diverged.
    non_finite: str | None = None
    #: The best epoch's weights (``FitTask.keep_best``), as ``best-weights.npz`` bytes.
    best_weights: bytes | None = None


def run_fit_task(task: FitTask, dataset: Dataset) -> FitReport:
    """Train ``task`` on ``dataset`` with the shared builder (``fit_config``), collecting its epochs.

    Args:
        task: the fit, as ``Attempt.fit_task`` made it.
        dataset: the study's data (its train and validation splits).

    Returns:
        The ``FitReport`` to hand to ``Attempt.take`` in the trial's process.

    Raises:
        Whatever the fit raises besides a diverged loss (a configuration that cannot be built): the
        trial's process fails the trial with it, as for a local fit.
    """
    epochs: list[tuple[int, dict[str, float]]] = []
    callbacks: list[Any] = [EpochRecorderCallback(
        lambda epoch, logs: epochs.append((epoch - task.epoch_offset, plain_metrics(logs))))]
    with tempfile.TemporaryDirectory(prefix="hpsearch-trial-") as folder:
        best = Path(folder) / "best.npz"
        if task.keep_best:
            callbacks.append(best_weights_keeper(task.objective, task.direction, best))
        try:
            result = fit_config(
                task.config, dataset, objective=task.objective, direction=task.direction,
                callbacks=callbacks, seed=task.seed, epochs=task.epochs, initial_epoch=task.initial_epoch,
                prepare_model=parent_loader(task.parent_weights, task.parent_source),
                checkpoint=task.checkpoint,
            )
        except NonFiniteLossError as error:
            return FitReport(epochs, non_finite=str(error))
        return FitReport(epochs, result, best_weights=best.read_bytes() if best.exists() else None)
