"""Our one epoch loop, for the fits that run outside Keras' ``Model.fit``: packs and direct fold fits.

A search trial alone trains with Keras' own ``fit`` (:func:`hpsearch.training.fit.fit_config`). Two fits
skip that machinery to save its per-trial cost, and both run their epochs here:

- a pack (:mod:`hpsearch.training.packing`) trains several members in one traced function per epoch;
- a direct fold fit (:mod:`hpsearch.training.direct_fit`) trains one model with functions traced once
  per structure and kept between fits.

Each brings its traced epoch and validation; the loop does what ``fit`` does around them, the same way
for both: each model's callbacks in order on one logs dict (validation metrics, learning rate, the
store's recorder, a pruner, a checkpoint), metrics reset before training and before validating, the
``val_*`` names, a model stopped by a callback (``stop_training``), a failed callback or a non-finite
loss trains no more while the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpsearch.storage import StorageError, TrialNotRunningError

from .fit import FitResult, NonFiniteLossError, non_finite_loss, objective_value


class Trainee:
    """A model while the loop trains it: its callbacks, its curve, and why it stopped if it did.

    Args:
        model: the compiled model.
        callbacks: its Keras callbacks, in the order they see each epoch's logs.
        switch: give it ``active``, a variable a traced epoch reads to skip a stopped model's steps
            (a pack's members share one traced epoch).
    """

    def __init__(self, model: Any, callbacks: Sequence[Any], *, switch: bool = False) -> None:
        self.model = model
        # As Keras' fit starts: a cached model (direct fits) may come back stopped from its last fit.
        model.stop_training = False
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
        self.active: Any = None
        if switch:
            import tensorflow as tf

            self.active = tf.Variable(True, trainable=False, name="pack_member_active")
        self.history: dict[str, list[float]] = {}
        self.error: Exception | None = None

    @property
    def running(self) -> bool:
        """Whether it still trains: no error, and no callback stopped it."""
        return self.error is None and not self.model.stop_training

    @property
    def epochs_run(self) -> int:
        """Epochs whose logs reached every callback."""
        return len(next(iter(self.history.values()), []))

    def call(self, hook: str, *args: Any) -> None:
        """Run a callback hook of this model only; its failure stops this model only.

        A refused write (recovery failed the trial meanwhile) is this model's; a database that fails
        is not a configuration's fault and stops the whole loop (the runner interrupts every trial).

        Raises:
            StorageError: the store failed.
        """
        if not self.running:
            return
        try:
            # Each callback in turn on the one logs dict, as in Keras' fit: the validation metrics and the
            # learning rate added by the first ones reach the recorder and the pruner after them.
            for callback in self.callbacks:
                getattr(callback, hook)(*args)
        except TrialNotRunningError as late:
            self.error = late
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001 - one model's error must not end the others
            self.error = error

    def pause_if_stopped(self) -> None:
        """Tell the traced epoch to skip this model's steps once it stopped."""
        if self.active is not None and not self.running:
            self.active.assign(False)

    def result(self, objective: str, direction: str) -> FitResult | Exception:
        """How this model's training ended: its ``FitResult`` (value and best epoch of ``objective``), or
        the error that stopped it alone (a callback's, or ``NonFiniteLossError`` for a diverged loss)."""
        if self.error is not None:
            return self.error
        for callback in self.callbacks:
            reason = getattr(callback, "non_finite", None)
            if reason:
                return NonFiniteLossError(reason)
        value, best_epoch = objective_value(self.history, objective, direction)
        return FitResult(history=self.history, value=value, best_epoch=best_epoch, epochs_run=self.epochs_run)


def train_epochs(
    trainees: Sequence[Trainee],
    epochs: int,
    train_epoch: Callable[[int], None],
    validate: Callable[[], Sequence[Mapping[str, Any]]] | None,
) -> None:
    """Train ``trainees`` for ``epochs`` epochs, each epoch's logs handed to their callbacks.

    Args:
        trainees: the models, with their callbacks.
        epochs: epochs to train, numbered from 0.
        train_epoch: trains every running model for one epoch (the epoch's number given).
        validate: the validation step's results, one per trainee in order (its metrics reset first); None
            when nothing is held out for validation.

    Raises:
        StorageError: the store failed (see ``Trainee.call``); a model's own errors stop only that model
        (``Trainee.error``).
    """
    for trainee in trainees:
        trainee.call("on_train_begin")
    for epoch in range(epochs):
        for trainee in trainees:
            trainee.call("on_epoch_begin", epoch)
            trainee.pause_if_stopped()
        if not any(trainee.running for trainee in trainees):
            break
        for trainee in trainees:
            trainee.model.reset_metrics()
        train_epoch(epoch)
        trained = [_floats(trainee.model.get_metrics_result()) if trainee.running else {}
                   for trainee in trainees]
        validation: Sequence[Mapping[str, Any]] = [{} for _ in trainees]
        if validate is not None:
            for trainee in trainees:
                trainee.model.reset_metrics()
            validation = validate()
        for trainee, logs, validated in zip(trainees, trained, validation, strict=True):
            if not trainee.running:
                continue
            logs.update({f"val_{name}": value for name, value in _floats(validated).items()})
            trainee.call("on_epoch_end", epoch, logs)
            if trainee.error is None:
                for name, value in logs.items():
                    trainee.history.setdefault(name, []).append(float(value))
                loss = logs.get("loss")
                if loss is not None and not math.isfinite(loss):
                    trainee.error = NonFiniteLossError(non_finite_loss(loss, epoch))
            trainee.pause_if_stopped()
    for trainee in trainees:
        trainee.call("on_train_end")


def _floats(logs: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in logs.items()}
