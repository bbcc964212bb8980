"""Packed training: configurations that share batch size and epoch count train together in one process.

Most of a short trial's time is not its arithmetic but Keras' machinery around it: tracing the train and
test functions, the fit loop, the data adapter, the validation pass, paid again by every trial (on digits
a 10-epoch trial of a small MLP spends about 1.5 s, of which its steps take a tenth). A pack traces one
function that runs an epoch of every member and one that validates them all, so that machinery is paid
once per pack and per epoch rather than once per trial and per epoch.

Each member still trains exactly as it would alone (:func:`hpsearch.training.fit.fit_config`):

- its own model, built by the one builder after seeding with its own training seed (so the same initial
  weights and dropout seeds), and its own optimizer with its own gradient clipping;
- its own batch order: the member's stateless stream of :func:`hpsearch.training.fit.epoch_batches`, zipped
  with the others', so every member sees the batches it would see alone;
- the same ``train_step`` and ``test_step`` Keras runs, on the same state; its curve is the one it has
  alone (bit for bit on digits, checked by ``tests/test_packing.py``);
- its own callbacks: validation metrics, learning-rate schedule, the store's recorder, the pruner, its
  checkpoint; and its own end: a member pruned, diverged (NaN) or whose callbacks failed stops alone
  (it is skipped from then on) while the others go on.

What a pack shares is its fate under faults that are no member's own: Ctrl-C, a lost database or an
error of the joint execution stop every member. The epochs themselves run in the epoch loop that direct
fold fits share (:mod:`hpsearch.training.epoch_loop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .epoch_loop import Trainee, train_epochs
from .fit import (
    VALIDATION_BATCH_ROWS,
    FitResult,
    ValidationMetrics,
    epoch_batches,
    fresh_keras_session,
    seed_everything,
    step_metric_names,
    task_info,
)

if TYPE_CHECKING:
    from ..data import Dataset
    from .checkpoints import EpochCheckpoint


def pack_key(config: Mapping[str, Any]) -> tuple[int, int]:
    """Configurations with equal keys can train in one pack: same batch size (so the same steps per
    epoch) and the same number of epochs."""
    return int(config["batch_size"]), int(config["epochs"])


@dataclass(frozen=True)
class PackMember:
    """One configuration of a pack and what it trains with."""

    config: Mapping[str, Any]
    #: Its training seed: initial weights, dropout masks and batch order, as alone.
    seed: int
    #: Its own Keras callbacks, after the validation metrics and learning-rate schedule (recorder, pruner).
    callbacks: Sequence[Any] = ()
    #: Rewritten after each of its epochs, so that a retry of an interrupted member continues alone.
    checkpoint: EpochCheckpoint | None = None


class _Training(Trainee):
    """A member while the pack trains: its model and callbacks in the epoch loop, and its plan."""

    def __init__(self, member: PackMember, model: Any, callbacks: list[Any]) -> None:
        # A switch: a stopped member's steps are skipped inside the pack's one traced epoch.
        super().__init__(model, callbacks, switch=True)
        self.member = member


def fit_pack(
    members: Sequence[PackMember], dataset: Dataset, *, objective: str, direction: str
) -> list[FitResult | Exception]:
    """Train ``members`` together on the dataset's train split, validating on its validation split.

    Returns, per member in order, its :class:`FitResult` or the exception that ended it alone (its build
    failed, its loss diverged: ``NonFiniteLossError``, a callback failed). Raises what ends the whole
    pack (KeyboardInterrupt, a database error, an error of the joint execution).
    """
    from hpsearch.spaces import build_model
    from hpsearch.spaces.objectives import metric_names
    from hpsearch.spaces.schedules import LearningRateCallback

    keys = {pack_key(member.config) for member in members}
    if len(keys) != 1:
        raise ValueError(f"a pack's configurations must share batch size and epochs, but got {sorted(keys)}")
    batch_size, epochs = keys.pop()
    task = task_info(dataset)
    stepped = step_metric_names(objective)
    validation_only = set(metric_names(task.kind, task.n_classes)) - stepped
    results: list[FitResult | Exception | None] = [None] * len(members)
    training: list[tuple[int, _Training]] = []
    try:
        for index, member in enumerate(members):
            try:
                seed_everything(member.seed)  # as alone: the same initial weights and dropout seeds
                model = build_model(member.config, task, metrics=stepped)
            except Exception as error:  # noqa: BLE001 - a configuration that cannot be built fails alone
                results[index] = error
                continue
            callbacks = [ValidationMetrics(task, validation_only, dataset.x_val, dataset.y_val),
                         LearningRateCallback(member.config), *member.callbacks]
            if member.checkpoint is not None:
                callbacks.append(member.checkpoint.keras_callback(0, None, callbacks))
            training.append((index, _Training(member, model, callbacks)))
        if training:
            _train_together([member for _, member in training], dataset, batch_size, epochs)
        for index, member in training:
            results[index] = member.result(objective, direction)
    finally:
        fresh_keras_session()
    return [result for result in results if result is not None]


def _train_together(members: list[_Training], dataset: Dataset, batch_size: int, epochs: int) -> None:
    import tensorflow as tf

    streams, steps = [], 0
    for member in members:
        batches, steps = epoch_batches(dataset, batch_size, member.member.seed, 0, epochs)
        streams.append(batches)
        member.model.optimizer.build(member.model.trainable_variables)
    iterator = iter(tf.data.Dataset.zip(tuple(streams)))
    rows = len(dataset.x_val)
    x_val, y_val = tf.constant(dataset.x_val), tf.constant(dataset.y_val)

    @tf.function
    def train_epoch(iterator: Any) -> None:
        for _ in tf.range(steps):
            batches = next(iterator)
            for member, batch in zip(members, batches, strict=True):
                # Every member draws its batch (the streams stay in step); a stopped one trains no more.
                tf.cond(member.active,
                        lambda model=member.model, batch=batch: _trained(model, batch),
                        lambda: tf.constant(False))

    @tf.function
    def validate() -> list[dict[str, Any]]:
        # Keras' evaluate in batches of VALIDATION_BATCH_ROWS, as a trial validates; metrics accumulate.
        logs = []
        for member in members:
            for start in range(0, rows, VALIDATION_BATCH_ROWS):
                end = start + VALIDATION_BATCH_ROWS
                result = member.model.test_step((x_val[start:end], y_val[start:end]))
            logs.append(result)
        return logs

    train_epochs(members, epochs, lambda epoch: train_epoch(iterator), validate)


def _trained(model: Any, batch: Any) -> Any:
    import tensorflow as tf

    model.train_step(batch)
    return tf.constant(True)

