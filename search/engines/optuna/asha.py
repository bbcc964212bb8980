"""Asynchronous successive halving (ASHA) as an Optuna pruner, its rungs read from the stored curves.

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020) gives every trial
``min_resource`` epochs, then decides at each rung epoch ``min_resource * factor**k`` (below the trial's
last epoch) whether it goes on: it does when its value at that epoch is among the best ``1/factor`` of
the values of every configuration that has reached that epoch so far (the best one when fewer than
``factor`` have). Nobody waits for a rung to fill: with K workers each trial is judged the moment it
arrives, against whoever arrived before it. This is the paper's stopping variant (the one that fits a
trial that trains from start to end in one go); Optuna's ``SuccessiveHalvingPruner`` applies the same
rule.

Where the rungs live is what differs from Optuna's pruner, which writes a ``completed_rung_k`` attribute
on each trial as it passes: here a configuration's rung value is its stored curve's value at the rung
epoch (Optuna's intermediate values, written per epoch in the study's database). So:

- rungs survive a kill and a resume with nothing extra to write (the curve is already stored when the
  decision is made), and a decision made before the kill still holds after it: the same curves give the
  same rungs;
- a ``--warm-start`` copy (a COMPLETE Optuna trial carrying its curve) sits on every rung its curve
  reaches, as a trial of the study does;
- a retry of an interrupted trial and the trial it retries count as one configuration, not two.
"""

from __future__ import annotations

import math
from typing import Any

from .session import NUMBER_ATTR, RETRY_ATTR

#: Defaults of ``--min-resources`` and ``--factor`` for the optuna engine's asha and hyperband pruners.
DEFAULT_MIN_RESOURCE = 1
DEFAULT_FACTOR = 3


def rung_epochs(min_resource: int, factor: int, max_epochs: int) -> list[int]:
    """The epochs at which ASHA decides, below ``max_epochs`` (a trial's last epoch is no rung: it ends).

    Args:
        min_resource: the first rung's epochs (at least 1).
        factor: the reduction factor (at least 2).
        max_epochs: the most epochs a trial trains.

    Returns:
        ``min_resource * factor**k`` for k = 0, 1, ... while below ``max_epochs``.
    """
    epochs, rung = [], min_resource
    while rung < max_epochs:
        epochs.append(rung)
        rung *= factor
    return epochs


def configuration_key(trial: Any) -> Any:
    """One key per configuration trained: a retry shares the key of the trial it retries; a trial not
    (yet) linked to an hpsearch trial number is keyed by its Optuna number."""
    attrs = trial.user_attrs
    if RETRY_ATTR in attrs:
        return ("hp", attrs[RETRY_ATTR])
    if NUMBER_ATTR in attrs:
        return ("hp", attrs[NUMBER_ATTR])
    return ("optuna", trial.number)


def rung_values(trials: list[Any], epoch: int, exclude: Any = None) -> list[float]:
    """The values at ``epoch`` of every configuration whose stored curve reaches it, one per configuration.

    Args:
        trials: the study's Optuna trials (any state: a running, pruned or failed trial that reached the
            epoch was judged there).
        epoch: the rung epoch (from 1; Optuna steps are 0-based).
        exclude: a configuration key left out (the trial being judged).

    Returns:
        The finite values, in no particular order.
    """
    values: dict[Any, float] = {}
    for trial in trials:
        value = trial.intermediate_values.get(epoch - 1)
        if value is None or not math.isfinite(value):
            continue
        key = configuration_key(trial)
        if key != exclude:
            values.setdefault(key, float(value))
    return list(values.values())


def promoted(value: float, others: list[float], factor: int, minimize: bool) -> bool:
    """Whether ``value`` is among the best ``1/factor`` of ``others`` plus itself (the best one when fewer
    than ``factor`` are there), ties kept.

    Args:
        value: the judged trial's value at the rung.
        others: the values of the other configurations at the rung.
        factor: the reduction factor.
        minimize: whether lower values are better.

    Returns:
        True when the trial goes on to the next rung.
    """
    ranked = sorted([*others, value], reverse=not minimize)
    kept = max(1, len(ranked) // factor)
    threshold = ranked[kept - 1]
    return value <= threshold if minimize else value >= threshold


def asha_pruner(min_resource: int, factor: int, max_epochs: int) -> Any:
    """Optuna pruner applying ASHA's rule (see the module docstring).

    Args:
        min_resource: the first rung's epochs.
        factor: the reduction factor.
        max_epochs: the space's most epochs (a trial whose ``epochs`` is tuned ends at its own).

    Returns:
        An ``optuna.pruners.BasePruner``.
    """
    import optuna
    from optuna.study import StudyDirection

    class AshaPruner(optuna.pruners.BasePruner):
        def __init__(self) -> None:
            self.min_resource = min_resource
            self.factor = factor
            self.max_epochs = max_epochs

        def prune(self, study: Any, trial: Any) -> bool:
            step = trial.last_step
            if step is None:
                return False
            epoch = step + 1
            last = int(trial.params.get("epochs", self.max_epochs))
            if epoch not in rung_epochs(self.min_resource, self.factor, last):
                return False
            value = trial.intermediate_values[step]
            if not math.isfinite(value):
                return True
            others = rung_values(study.get_trials(deepcopy=False), epoch, exclude=configuration_key(trial))
            return not promoted(value, others, self.factor, study.direction == StudyDirection.MINIMIZE)

    return AshaPruner()
