"""Learning-rate schedules: the ``lr_schedule`` parameter, applied per epoch in every fit.

A schedule is a factor of the configured ``learning_rate`` for each epoch (counted from 0 over the whole
training, so a Hyperband round that continues at epoch 4 gets epoch 4's rate):

- ``none``: always 1; the learning rate is still recorded;
- ``step(drop=0.1, every=10)``: ``drop ** (epoch // every)``, the learning rate divided by 10 every 10
  epochs;
- ``exponential(rate=0.9)``: ``rate ** epoch``;
- ``cosine(epochs=E, alpha=0.0)``: half a cosine from 1 down to ``alpha`` over ``E`` epochs (default:
  the config's ``epochs``), then ``alpha``.

Per epoch rather than per step (a ``keras.optimizers.schedules.LearningRateSchedule``): ``every`` counts
epochs, and the rate used in an epoch is one number that the epoch's logs can carry. The callback from
:func:`LearningRateCallback` is the one definition every fit path uses (``hpsearch.training.fit.fit_config``
for Optuna and KerasTuner, the SciKeras fit of the sklearn engine, and retrain). It writes the rate it
trained the epoch with into the logs as ``learning_rate``, so the rate lands in every curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .hyperparameters import DEFAULTS, parse_value
from .specs import Spec


def schedule_factor(spec: Spec, epoch: int, epochs: int) -> float:
    """The factor of the base learning rate at 0-based ``epoch``; ``epochs`` is the config's epochs."""
    if spec.name == "step":
        return float(spec.args["drop"]) ** (epoch // int(spec.args["every"]))
    if spec.name == "exponential":
        return float(spec.args["rate"]) ** epoch
    if spec.name == "cosine":
        span = int(spec.args.get("epochs") or epochs)
        alpha = float(spec.args["alpha"])
        return alpha + (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * min(epoch, span) / span))
    return 1.0


def learning_rates(config: Mapping[str, Any], epochs: int | None = None) -> list[float]:
    """The learning rate of each epoch that ``config`` trains with (for plans, cards and tests)."""
    config = {**DEFAULTS, **config}
    spec = parse_value("lr_schedule", config["lr_schedule"])
    total = int(config["epochs"] if epochs is None else epochs)
    base = float(config["learning_rate"])
    return [base * schedule_factor(spec, epoch, int(config["epochs"])) for epoch in range(total)]


def LearningRateCallback(config: Mapping[str, Any]) -> Any:  # noqa: N802
    """The Keras callback applying ``config``'s ``lr_schedule`` and logging ``learning_rate`` per epoch.

    Put it first among the callbacks: ``on_epoch_end`` callbacks after it (recorders, CSV logger,
    ``ReduceLROnPlateau``) then see the rate this epoch trained with. A factory, so that importing this
    module does not import Keras.

    With ``ReduceLROnPlateau`` beside it (retrain, when asked), the schedule multiplies whatever the
    plateau callback already cut: the rate is ``base * factor(epoch) * (cuts so far)``.
    """
    import keras

    config = {**DEFAULTS, **config}
    spec = parse_value("lr_schedule", config["lr_schedule"])
    base = float(config["learning_rate"])
    epochs = int(config["epochs"])

    class _LearningRate(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._set: float | None = None

        def _current(self) -> float:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            if spec.name == "none":
                return
            # Another callback (ReduceLROnPlateau) may have cut the rate since we set it: keep its cut.
            outside = self._current() / self._set if self._set else 1.0
            rate = base * schedule_factor(spec, epoch, epochs) * outside
            self.model.optimizer.learning_rate = rate
            self._set = self._current()  # as the optimizer holds it (float32), so the ratio above is 1

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None:
                logs["learning_rate"] = self._current()

    return _LearningRate()
