"""Population training: many configurations of one depth trained as ONE model, weights stacked per member.

A pack (:mod:`hpsearch.training.packing`) runs each member's own Keras ``train_step`` inside one traced
epoch: the per-model machinery is paid once, but every member still does its own small matmuls. A
population goes further: members that share the number of hidden layers become one model whose kernels
are ``[members, fan_in, fan_out]`` tensors, so each layer of each step is ONE batched matmul for all of
them, inside one traced function per epoch. Its arithmetic is in :mod:`hpsearch.training.population_ops`.

Interface (used by the search's runner and by the scikit-learn engine's candidates x folds)::

    member = PopulationMember(config, seed, callbacks=[...], train_rows=None, val_rows=None)
    results = fit_population(members, dataset, objective="val_accuracy", direction="maximize")
    # -> one FitResult (its per-epoch history, best value) or the Exception that ended it, per member

    population = Population(members, task, x_train, y_train, x_val, y_val, w_train=None,
                            step_metrics={"accuracy"})
    population.train_epoch(epoch)       # every active member, one epoch, in one traced call
    population.validate()               # per member: {"loss": ..., "accuracy": ..., "auc": ...}
    population.train_logs(index)        # the last epoch's training logs: loss, step metrics, learning_rate
    population.stop(index)              # mask a member out (diverged, pruned); the others go on
    population.predict(x)               # [members, rows, outputs]: probabilities or target units
    population.keras_model(index)       # a plain compiled Keras model holding that member's weights

- ``config``: a resolved builder configuration (``hpsearch.spaces.build_model``'s); members must share
  the number of hidden layers and use neither ``batch_norm`` nor a model function, and may differ in
  everything else. ``population_key`` groups by depth and batch size: members of other batch sizes may
  join (padded to the largest batch, idle once their epoch's batches are done), but measured slower (16
  members of the default space in three batch sizes, 10 epochs on digits: 17.6 s as one population,
  10.2 s as three). Widths below the widest are masked (zero weights that stay zero); activations and
  optimizers (sgd with momentum and nesterov, adam, adamw, nadam, rmsprop) are applied to the members of
  each kind, grouped inside the population; learning rate (and its ``lr_schedule``), dropout, L1/L2,
  max-norm, clipnorm/clipvalue, weight decay, batch size and epochs are per-member values.
- ``seed``: the member's training seed. Its initial weights are drawn exactly as
  ``hpsearch.training.fit.fit_config`` draws them (the builder's initializers in its order after
  ``keras.utils.set_random_seed(seed)``), and each epoch visits its rows in the order a member alone
  visits them (the stateless shuffle of ``epoch_batches``, from ``(seed, epoch)``).
- ``train_rows`` / ``val_rows``: optional index arrays into ``x_train`` / ``x_val`` (a fold's rows);
  None: all rows. Members of one population may have different row counts.
- ``callbacks``: Keras callbacks that see each epoch's logs (the store's recorder, a pruner); one that
  sets ``model.stop_training`` stops that member only. Members keep no per-epoch checkpoint: a retry of
  an interrupted member trains from its first epoch.

How close a member is to training alone: without dropout, within floating-point rounding (the same
initial weights, batches and update formulas; only the order of sums inside the batched kernels
differs, and rounding differences can grow over epochs as they do between two machines). Measured on
digits against ``fit_config`` (7 members, one per optimizer form, 10 epochs, batch 64): per-epoch
``val_accuracy`` and ``val_f1`` identical, ``val_auc`` within 1.2e-7, losses within 5.4e-6 (Nadam;
3.4e-7 for the others); ``tests/test_population.py`` holds every logged value within 1e-4.

With dropout, within noise: a population draws its dropout masks from one stream per step (seeded by
its members' seeds), not the ones Keras draws for the member alone (48 random configurations of the
default space, 10 epochs: median |difference| of the best ``val_accuracy`` 0.003, largest 0.022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .epoch_loop import Trainee, train_epochs
from .fit import (
    FitResult,
    fresh_keras_session,
    step_metric_names,
    task_info,
    training_weights,
)
from .population_model import Population, PopulationMember, member_settings, population_key

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = ["Population", "PopulationMember", "fit_population", "population_key"]


class _MemberModel:
    """What a member's Keras callbacks see as their ``model``: ``stop_training`` and its training logs."""

    def __init__(self, population: Population, index: int) -> None:
        self.population = population
        self.index = index
        self.stop_training = False

    def reset_metrics(self) -> None:
        """Nothing to reset: the population sums each epoch afresh."""

    def get_metrics_result(self) -> dict[str, float]:
        return self.population.train_logs(self.index)


class _Member(Trainee):
    """A member in the epoch loop; it ends after its own epochs, and a stopped one is masked out."""

    def __init__(self, population: Population, index: int, member: PopulationMember) -> None:
        super().__init__(_MemberModel(population, index), member.callbacks)
        self.population = population
        self.index = index
        self.own_epochs = member_settings(member.config)["epochs"]

    @property
    def running(self) -> bool:
        return super().running and self.epochs_run < self.own_epochs

    def call(self, hook: str, *args: Any) -> None:
        if hook == "on_train_end" and self.error is None and not self.model.stop_training:
            # A member that trained its own epochs has its end announced, as Keras' fit would.
            saved, self.own_epochs = self.own_epochs, math.inf  # type: ignore[assignment]
            super().call(hook, *args)
            self.own_epochs = saved
            return
        super().call(hook, *args)

    def pause_if_stopped(self) -> None:
        if not self.running:
            self.population.stop(self.index)


def fit_population(
    members: Sequence[PopulationMember], dataset: Dataset, *, objective: str, direction: str
) -> list[FitResult | Exception]:
    """Train ``members`` (one depth, see ``population_key``) as one population on the dataset's train
    split (or each member's ``train_rows`` of it), validating on its validation split (or ``val_rows``).

    Args:
        members: the configurations with their seeds, callbacks and rows.
        dataset: the study's data.
        objective, direction: what the best epoch is judged by.

    Returns:
        Per member in order, its ``FitResult`` or the exception that ended it alone (a diverged loss:
        ``NonFiniteLossError``; a failed callback).

    Raises:
        ValueError: members that cannot share a population.
        Whatever ends every member (KeyboardInterrupt, a database error).
    """
    from hpsearch.spaces.objectives import metric_names

    task = task_info(dataset)
    stepped = step_metric_names(objective) & set(metric_names(task.kind, task.n_classes))
    population = Population(members, task, dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val,
                            w_train=training_weights(dataset), step_metrics=stepped)
    try:
        trainees = [_Member(population, index, member) for index, member in enumerate(members)]
        validate = population.validate if len(dataset.y_val) else None
        train_epochs(trainees, population.epochs, population.train_epoch, validate)
        return [trainee.result(objective, direction) for trainee in trainees]
    finally:
        fresh_keras_session()  # the initializers' and dropout layers' Keras state, as after a fit alone
