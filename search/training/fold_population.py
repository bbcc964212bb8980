"""Cross-validation folds of many candidates trained as populations: the sklearn engine's
``--trainer population``.

Each (candidate, fold) is one member of a population (:mod:`hpsearch.training.population`): the
candidate's model, loss, optimizer, learning rate (and schedule), dropout, regularizer, constraint,
clipping and epochs, trained on its fold's training rows less their last ``validation_split`` (which give
the ``val_*`` curves, as SciKeras holds them out), each member with its own rows and its own batch order.
Members sharing the number of hidden layers and the batch size train as one stacked model; a batch size
above a fold's rows is one batch of all its rows, as Keras trains it, so it is capped at the rows (the
batches are the same, and no padded row is computed). After training, every member's outputs on the
cross-validation rows come from one call, and the candidate's scikit-learn scorer scores each member's
held-out rows, as ``--trainer hpsearch`` scores them (:mod:`hpsearch.training.direct_fit`).

How close the fold scores are to ``--trainer hpsearch``'s: the same initial weights (drawn from the
estimator's ``random_state``, as a direct fit draws them) and the same batch order (the stateless shuffle
of ``(random_state, epoch)`` over the fold's rows), so without dropout within floating-point rounding;
with dropout within noise (a population draws its masks from its own stream). A configuration that
cannot join a population (``batch_norm``, a model function) is fitted directly, alone.

Each fold's epochs go to its ``on_epoch`` as they end; a member that diverges ends its fold with the
error (the candidate fails, as ``error_score`` says), the others train on. Fit time is the population's
training time shared equally among its members.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hpsearch.storage import StorageError, TrialConflictError

from .direct_fit import _FittedClassifier, _FittedRegressor, builder_config
from .fit import EpochRecorderCallback, NonFiniteLossError, describe_error, fresh_keras_session
from .fold_fitting import FoldResult, fit_and_score
from .scikeras_models import task_kind

#: Most members (candidates x folds) trained as one population: larger ones share the per-step cost
#: among more members, while their arrays (members x batch x width per layer) stay small.
MAX_MEMBERS = 512


@dataclass(frozen=True)
class FoldRequest:
    """The folds of one candidate to fit.

    Attributes:
        params: the candidate's estimator parameters (as ``GridSearchCV`` sets them).
        folds: the folds to fit (indices into the splits).
        on_epoch: called with (fold, epoch, logs) as each of its folds' epochs ends.
    """

    params: Mapping[str, Any]
    folds: Sequence[int]
    on_epoch: Callable[[int, int, Mapping[str, Any]], None]


class _HeldOut:
    """A member's outputs on the cross-validation rows, answered for the rows its fold holds out (the one
    ``x`` the scorer asks about)."""

    def __init__(self, outputs: np.ndarray, test: np.ndarray) -> None:
        self.outputs = outputs
        self.test = test

    def __call__(self, x: Any) -> np.ndarray:
        if len(x) != len(self.test):
            raise ValueError("a population member is scored on its held-out rows only")
        return self.outputs[self.test]


def fit_folds_as_populations(
    estimator: Any,
    requests: Sequence[FoldRequest],
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    scorer: Callable[..., float],
) -> list[list[FoldResult]]:
    """Fit and score the requested folds of every candidate, those of one depth and batch size as one
    population.

    Args:
        estimator: the search's base estimator; each request's ``params`` are set on a clone of it.
        requests: the candidates and their folds.
        x, y: the rows cross-validation splits, and their labels.
        sample_weight: per-row weights of the training loss, or None.
        splits: each fold's (training rows, held-out rows).
        scorer: scikit-learn's scorer of a fold's held-out rows.

    Returns:
        Per request in order, its folds' results in the order of its ``folds`` (a failed fold carries
        its error, as ``fit_and_score`` returns it).

    Raises:
        KeyboardInterrupt, StorageError, TrialConflictError: from an ``on_epoch`` (the runner decides).
    """
    from sklearn.base import clone

    from .population_model import PopulationMember, population_key

    kind = task_kind(estimator)
    groups: dict[Any, list[tuple[int, int, PopulationMember, np.ndarray]]] = {}
    results: list[dict[int, FoldResult]] = [{} for _ in requests]
    for number, request in enumerate(requests):
        full = clone(estimator).set_params(**request.params).get_params(deep=False)
        config = builder_config(full)
        key = population_key(config)
        if key is None:  # trains alone, directly
            for fold in request.folds:
                results[number][fold] = _fit_directly(estimator, request, fold, x, y, sample_weight, splits,
                                                      scorer)
            continue
        seed = int(full["random_state"])
        held = float(full["validation_split"] or 0.0)
        for fold in request.folds:
            train = np.asarray(splits[fold][0])
            trained = math.floor(len(train) * (1.0 - held)) or len(train)
            own = {**config, "batch_size": min(int(config["batch_size"]), trained)}
            recorder = EpochRecorderCallback(
                lambda epoch, logs, request=request, fold=fold: request.on_epoch(fold, epoch, logs))
            member = PopulationMember(own, seed, callbacks=[recorder], train_rows=train[:trained],
                                      val_rows=train[trained:])
            groups.setdefault((key[1], own["batch_size"]), []).append(
                (number, fold, member, np.asarray(splits[fold][1])))
    class_weight = estimator.get_params(deep=False).get("class_weight") if kind != "regression" else None
    for group in groups.values():
        for start in range(0, len(group), MAX_MEMBERS):
            chunk = group[start:start + MAX_MEMBERS]
            for (number, fold, _, _), result in zip(
                    chunk, _train(kind, chunk, x, y, sample_weight, class_weight, scorer), strict=True):
                results[number][fold] = result
    return [[found[fold] for fold in request.folds] for found, request in zip(results, requests, strict=True)]


def _fit_directly(estimator: Any, request: FoldRequest, fold: int, x: np.ndarray, y: np.ndarray,
                  sample_weight: np.ndarray | None, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                  scorer: Callable[..., float]) -> FoldResult:
    """A fold that cannot join a population: ``--trainer hpsearch``'s fit."""
    train, test = splits[fold]
    return fit_and_score(estimator, request.params, x, y, train, test, scorer, fold=fold,
                         sample_weight=sample_weight,
                         on_epoch=lambda epoch, logs: request.on_epoch(fold, epoch, logs), trainer="hpsearch")


def _train(kind: str, chunk: list[tuple[int, int, Any, np.ndarray]], x: np.ndarray, y: np.ndarray,
           sample_weight: np.ndarray | None, class_weight: Mapping[int, float] | None,
           scorer: Callable[..., float]) -> list[FoldResult]:
    """One population: train its members, score each on its held-out rows."""
    from hpsearch.spaces import TaskInfo, target_statistics
    from hpsearch.spaces.metrics import STEP_METRICS
    from hpsearch.spaces.objectives import metric_names

    from .direct_fit import _row_weights
    from .epoch_loop import train_epochs
    from .population import _Member
    from .population_model import Population

    members = [member for _, _, member, _ in chunk]
    started = time.perf_counter()
    if kind == "regression":
        classes = None
        targets = np.asarray(y, dtype="float32")
        task = TaskInfo(kind=kind, n_features=int(x.shape[1]), n_classes=1)
    else:
        # As SciKeras encodes a classifier's target: the classes, as 0..n-1 (every fold has each class:
        # the folds are stratified and every class has a row per fold, see check_rows).
        classes = np.unique(y)
        targets = np.searchsorted(classes, y).astype("float32")
        task = TaskInfo(kind=kind, n_features=int(x.shape[1]), n_classes=len(classes))
    weights = _row_weights(np.asarray(y), sample_weight, class_weight, len(y))
    validated = any(len(member.val_rows) for member in members)
    try:
        try:
            population = Population(members, task, x, targets, x if validated else None,
                                    targets if validated else None, w_train=weights,
                                    step_metrics=STEP_METRICS & set(metric_names(kind, task.n_classes)))
            trainees = [_Member(population, index, member) for index, member in enumerate(members)]
            train_epochs(trainees, population.epochs, population.train_epoch,
                         population.validate if validated else None)
            ended = [trainee.result("loss", "minimize") for trainee in trainees]
            outputs = population.predict(x)
        except (KeyboardInterrupt, StorageError, TrialConflictError):
            raise
        except Exception as error:  # the population could not train: every member's fold fails with it
            fit_time = (time.perf_counter() - started) / len(chunk)
            return [FoldResult(fold, None, fit_time, 0.0, 0, f"fold {fold}: {describe_error(error)}")
                    for _, fold, _, _ in chunk]
    finally:
        fresh_keras_session()
    fit_time = (time.perf_counter() - started) / len(chunk)
    results = []
    for index, ((_, fold, member, test), fit) in enumerate(zip(chunk, ended, strict=True)):
        epochs = trainees[index].epochs_run
        if isinstance(fit, Exception):  # diverged (the reason as it is), or a callback failed
            why = str(fit) if isinstance(fit, NonFiniteLossError) else describe_error(fit)
            results.append(FoldResult(fold, None, fit_time, 0.0, epochs, f"fold {fold}: {why}"))
            continue
        raw = _HeldOut(outputs[index], test)
        fitted = (_FittedClassifier(raw, classes) if classes is not None
                  else _FittedRegressor(raw, target_statistics(y[member.train_rows])[1]))
        scored = time.perf_counter()
        try:
            score = float(scorer(fitted, x[test], y[test]))
        except Exception as error:  # error_score: this candidate fails, the search goes on
            why = describe_error(error)
            results.append(FoldResult(fold, None, fit_time, 0.0, epochs, f"fold {fold}: {why}"))
            continue
        score_time = time.perf_counter() - scored
        if not math.isfinite(score):
            results.append(FoldResult(fold, None, fit_time, score_time, epochs,
                                      f"fold {fold}: the score was {score}"))
            continue
        results.append(FoldResult(fold, score, fit_time, score_time, epochs))
    return results
