"""A trial's best-epoch weights in memory and on disk: what a Hyperband round keeps and continues from.

KerasTuner's Hyperband continues a round's best epoch in the next round. The callback that keeps that
epoch's weights and the reader of a weights file are training code, used wherever a round trains (this
process, or a Dask worker, :mod:`hpsearch.executors.cluster`); which rounds keep weights, and where the
files live, is the engine's (``hpsearch.engines.keras_tuner.weights``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .work_files import matching_weights, write_durably


def best_weights_keeper(objective: str, direction: str, path: Path) -> Any:
    """A Keras callback that keeps the best epoch's weights in memory and writes them once, atomically,
    to ``path`` when training ends.

    KerasTuner's ``SaveBestEpoch`` writes a checkpoint at every improving epoch; one write per trial
    keeps its meaning (the next round continues from the best epoch) at a fraction of the disk traffic.

    Args:
        objective: the logged metric that ranks epochs; epochs without a finite value are skipped.
        direction: ``"minimize"`` or ``"maximize"``.
        path: the ``best-weights.npz`` to write; nothing is written when no epoch had a finite value.
    """
    import keras
    import numpy

    class BestWeights(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: float | None = None
            self.weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            value = (logs or {}).get(objective)
            if value is None or not math.isfinite(float(value)):
                return
            value = float(value)
            if self.best is None or (value < self.best if direction == "minimize" else value > self.best):
                self.best, self.weights = value, self.model.get_weights()

        # A round continued from a checkpoint (hpsearch.training.checkpoints) keeps its best epoch so far.
        def checkpoint_state(self) -> tuple[dict[str, Any], list[Any]]:
            return {"best": self.best}, list(self.weights or [])

        def check_checkpoint_state(self, state: Any, arrays: list[Any]) -> str | None:
            """Why a checkpoint's state cannot be this callback's (None: it can); called before any
            restore, so a foreign or damaged checkpoint is set aside whole."""
            best = state.get("best") if isinstance(state, dict) else math.nan
            if best is not None and (not isinstance(best, int | float) or not math.isfinite(best)):
                return f"holds a malformed best value {best!r} of the round's best weights"
            wanted = [tuple(array.shape) for array in self.model.get_weights()]
            if arrays and [tuple(array.shape) for array in arrays] != wanted:
                return "holds best weights of another shape than this round's model"
            return None

        def restore_checkpoint_state(self, state: Mapping[str, Any], arrays: list[Any]) -> None:
            self.best, self.weights = state["best"], (arrays or None)

        def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
            if self.weights is None:
                return
            weights = self.weights
            # Flushed and moved into place: a kill or power cut leaves the old file or the new one.
            write_durably(path, lambda file: numpy.savez(file, *weights))

    return BestWeights()


def load_weights(path: Any) -> list[Any]:
    """The arrays of a ``best-weights.npz`` (a path or an open binary file), in ``get_weights`` order.

    Raises whatever NumPy raises for a damaged file (see ``hpsearch.training.work_files.unusable_weights``);
    never unpickles.
    """
    import numpy

    with numpy.load(path, allow_pickle=False) as arrays:
        return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]


def parent_loader(weights: Path | bytes | None, source: Path | str | None = None) -> Callable[[Any], None]:
    """The ``prepare_model`` of a round that continues its parent round: it loads the parent's best weights.

    Args:
        weights: the parent's ``best-weights.npz``, as a path or as its bytes (sent with a Dask task); None
            when the round trains from its first epoch.
        source: where the weights came from, named when their shapes do not fit (default: the path).

    Returns:
        A function of the built model that sets its weights (nothing when ``weights`` is None).

    Raises:
        ValueError: (when called) the file holds arrays of other shapes than the model's.
    """

    def load_parent(model: Any) -> None:
        if weights is None:
            return
        arrays = load_weights(io.BytesIO(weights) if isinstance(weights, bytes) else weights)
        named = Path(str(source if source is not None else weights))
        model.set_weights(matching_weights(arrays, model, named))

    return load_parent
