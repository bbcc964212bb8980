"""The fold's side of a ``--jobs`` fold process or a Dask fold task: fit one fold, collect its epochs.

Runs where the fold trains, away from the trial's ``Attempt``: each epoch is sent back (streamed as it
ends from a fold process, returned with the result from a Dask task), and the trial's process records it
(``hpsearch.executors.folds``). Imports only
the training layer, so a fold process or a Dask worker loads neither an engine nor the parent's side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..training.fold_fitting import FoldResult

#: A fold's epochs as a fold process or a Dask task sends them back: (epoch, plain metrics) in order.
Epochs = list[tuple[int, dict[str, float]]]


def fit_fold_sending(
    estimator: Any,
    params: Mapping[str, Any],
    data: tuple[Any, Any, Any],
    train: np.ndarray,
    test: np.ndarray,
    scorer: Any,
    *,
    fold: int,
    compiled_models: Any,
    trainer: str,
    send: Callable[[int, dict[str, float]], None],
) -> FoldResult:
    """One fold fitted away from its trial's ``Attempt`` (a fold process, a Dask worker): each epoch goes
    to ``send`` as plain metrics, on its way back to the process that records it.

    Args:
        estimator: the search's base estimator; ``params`` are the candidate's.
        data: the rows cross-validation splits, their labels and their weights (or None).
        train, test: the fold's row indices.
        scorer: scikit-learn's scorer of the fold's held-out rows.
        fold: the fold's index.
        compiled_models: the process's cache of ``trainer``'s models (``fit_cache``).
        trainer: ``scikeras`` or ``hpsearch``.
        send: called with each epoch's number and plain metrics as the epoch ends.

    Returns:
        The fold's ``FoldResult``.
    """
    from ..training.fold_fitting import fit_and_score
    from ..training.recorder import plain_metrics

    x, y, sample_weight = data
    return fit_and_score(
        estimator, params, x, y, train, test, scorer, fold=fold, sample_weight=sample_weight,
        on_epoch=lambda epoch, logs: send(epoch, plain_metrics(logs)),
        compiled_models=compiled_models, trainer=trainer,
    )


#: What a fold process keeps between folds: the data, the base estimator, its scorer and compiled models,
#: and the connection its epochs go back on.
_FOLD_PROCESS: dict[str, Any] = {}


def open_fold_process(
    epochs_address: Any,
    epochs_authkey: bytes,
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    estimator: Any,
    scoring: str,
    trainer: str,
) -> None:
    """Keep what every fold of this fold process needs, and connect to the trial process's
    ``hpsearch.executors.epoch_stream.EpochStream`` at ``epochs_address``; called once by
    ``hpsearch.executors.process_setup.start_fold_process``, after the process sized its threads."""
    from ..training.fold_fitting import fit_cache
    from ..training.scoring import scorer
    from .epoch_stream import epoch_sender

    _FOLD_PROCESS.update(
        epochs=epoch_sender(epochs_address, epochs_authkey),
        data=(x, y, sample_weight), estimator=estimator, scorer=scorer(estimator, scoring), trainer=trainer,
        compiled_models=fit_cache(trainer),
    )


def fit_fold_in_process(
    tag: int, params: Mapping[str, Any], fold: int, train: np.ndarray, test: np.ndarray
) -> tuple[FoldResult, int]:
    """One fold of trial ``tag`` in a fold process: each epoch sent to the trial's process as it ends.

    Returns:
        The fold's result and how many epochs were sent before it (the receiver waits for them all).
    """
    from ..training.direct_fit import release

    state = _FOLD_PROCESS
    sent = 0

    def send(epoch: int, logs: dict[str, float]) -> None:
        nonlocal sent
        state["epochs"].send((tag, fold, epoch, logs))
        sent += 1

    try:
        result = fit_fold_sending(state["estimator"], params, state["data"], train, test, state["scorer"],
                                  fold=fold, compiled_models=state["compiled_models"],
                                  trainer=state["trainer"], send=send)
        return result, sent
    finally:
        if state["trainer"] == "hpsearch":
            release()  # SciKeras' fits are released by the builder, before the next build
