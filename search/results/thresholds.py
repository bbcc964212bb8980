"""Decision thresholds for binary models: chosen on the validation split, applied by ``predict``.

A binary model outputs the probability of the positive class; predicting positive at ``p >= 0.5`` is
rarely what a user wants when that class is rare. ``hpsearch retrain --threshold-for CRITERION`` picks the
threshold on the **validation** split's predictions (never on test) by one of:

- ``f1``: the highest F1 of the positive class;
- ``youden``: the highest Youden's J, recall + specificity - 1 (equivalently, balanced accuracy);
- ``recall@P``: the highest recall whose precision is at least ``P`` (for example ``recall@0.9``);
- ``precision@R``: the highest precision whose recall is at least ``R`` (for example ``precision@0.8``).

Plain ``precision`` or ``recall`` are refused: maximised alone they pick a trivial threshold (only the
single top-scored row positive, or every row positive).

Candidate thresholds are the distinct validation scores; the one returned lies halfway between the
chosen score and the next lower one, so it makes exactly the validation decisions it was chosen for
without sitting on a training-set artefact. Ties go to the higher threshold (fewer positives).
Numpy only: no Keras, no scikit-learn (``threshold_block`` calls the network's own ``predict``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError

CRITERIA = ("f1", "youden", "recall@P", "precision@R")
_AT = re.compile(r"^(recall|precision)@([0-9]*\.?[0-9]+)$")


@dataclass(frozen=True)
class Criterion:
    """A parsed ``--threshold-for``: what to maximise and, for ``x@v``, the floor on the other metric."""

    text: str
    maximise: str  # f1, youden, recall or precision
    floor: float | None = None  # the other metric's minimum, for recall@P and precision@R

    def describe(self) -> str:
        if self.maximise == "f1":
            return "the highest F1 on the validation split"
        if self.maximise == "youden":
            return "the highest Youden's J (recall + specificity - 1) on the validation split"
        other = "precision" if self.maximise == "recall" else "recall"
        return f"the highest {self.maximise} with {other} >= {self.floor:g} on the validation split"


def parse_criterion(text: str) -> Criterion:
    """Read ``--threshold-for``; raise :class:`UsageError` saying what is accepted."""
    accepted = "f1, youden, recall@P (for example recall@0.9) or precision@R (for example precision@0.8)"
    value = text.strip().lower()
    if value in ("f1", "youden"):
        return Criterion(value, value)
    if value in ("precision", "recall"):
        other = "recall" if value == "precision" else "precision"
        raise UsageError(
            f"--threshold-for {text} alone picks a trivial threshold; ask for {value}@X instead, the highest "
            f"{value} with {other} at least X (accepted: {accepted})"
        )
    match = _AT.match(value)
    if match:
        floor = float(match.group(2))
        if not 0 < floor <= 1:
            raise UsageError(f"--threshold-for {text}: the value after @ must be in (0, 1], but got "
                             f"{floor:g}")
        return Criterion(value, match.group(1), floor)
    raise UsageError(f"--threshold-for must be {accepted}, but got {text!r}")


def confusion(y_true: Any, positive: Any) -> dict[str, float]:
    """Counts and the threshold-dependent scores of binary predictions ``positive`` (booleans)."""
    y = np.asarray(y_true).reshape(-1).astype(bool)
    p = np.asarray(positive).reshape(-1).astype(bool)
    tp, fp = float(np.sum(p & y)), float(np.sum(p & ~y))
    fn, tn = float(np.sum(~p & y)), float(np.sum(~p & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0  # scikit-learn's zero_division=0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / max(len(y), 1), "precision": precision, "recall": recall, "f1": f1,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def scores_at(y_true: Any, probability: Any, threshold: float) -> dict[str, float]:
    """:func:`confusion` of predicting positive where ``probability >= threshold`` (as ``predict`` does)."""
    return confusion(y_true, np.asarray(probability).reshape(-1) >= threshold)


@dataclass(frozen=True)
class Choice:
    """The chosen threshold, or why none met the criterion (then ``threshold`` is 0.5)."""

    threshold: float
    reached: bool
    validation: dict[str, float]


def choose_threshold(y_true: Any, probability: Any, criterion: Criterion) -> Choice:
    """The threshold ``criterion`` picks on these (validation) labels and probabilities."""
    y = np.asarray(y_true).reshape(-1).astype(bool)
    scores = np.asarray(probability, dtype=np.float64).reshape(-1)
    distinct = np.unique(scores)[::-1]  # descending: each is "positive when score >= this"
    positives, negatives = float(y.sum()), float((~y).sum())
    # Counts at every candidate threshold at once: rows with score >= t, split by label.
    order = np.sort(scores[y])
    tp = positives - np.searchsorted(order, distinct, side="left")
    order = np.sort(scores[~y])
    fp = negatives - np.searchsorted(order, distinct, side="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / positives if positives else np.zeros_like(tp)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        specificity = 1 - fp / negatives if negatives else np.ones_like(fp)
    if criterion.maximise == "f1":
        target, allowed = f1, np.ones_like(f1, dtype=bool)
    elif criterion.maximise == "youden":
        target, allowed = recall + specificity - 1, np.ones_like(f1, dtype=bool)
    elif criterion.maximise == "recall":
        target, allowed = recall, precision >= criterion.floor
    else:
        target, allowed = precision, recall >= criterion.floor
    if not allowed.any():
        return Choice(0.5, False, scores_at(y, scores, 0.5))
    # Best value among allowed thresholds; the first in descending order is the highest threshold.
    masked = np.where(allowed, target, -np.inf)
    index = int(np.argmax(masked))
    chosen = distinct[index]
    lower = distinct[index + 1] if index + 1 < len(distinct) else 0.0
    threshold = float((chosen + lower) / 2)
    return Choice(threshold, True, scores_at(y, scores, threshold))


def threshold_block(network: Any, dataset: Any, criterion: Criterion) -> dict[str, Any]:
    """The decision threshold ``criterion`` picks on the validation split, and the test scores there.

    Chosen on validation predictions of the exported network only; the test split is scored at the
    chosen threshold and at 0.5, never used to choose.

    Args:
        network: the trained network (anything with Keras' ``predict``), fed preprocessed rows.
        dataset: the study's :class:`hpsearch.data.Dataset` (validation and test splits).
        criterion: the parsed ``--threshold-for``.

    Returns:
        The card's ``threshold`` section.
    """
    validation = network.predict(dataset.x_val, verbose=0, batch_size=1024).reshape(-1)
    test = network.predict(dataset.x_test, verbose=0, batch_size=1024).reshape(-1)
    choice = choose_threshold(dataset.y_val, validation, criterion)
    return {
        "value": choice.threshold,
        "chosen_by": criterion.text,
        "chosen_on": "validation",
        "description": criterion.describe(),
        "reached": choice.reached,
        "rule": "predict the positive class when probability >= value",
        "validation": choice.validation,
        "validation_at_0.5": scores_at(dataset.y_val, validation, 0.5),
        "test": scores_at(dataset.y_test, test, choice.threshold),
        "test_at_0.5": scores_at(dataset.y_test, test, 0.5),
    }


#: Test scores at the chosen threshold that the database (and so ``best`` and ``compare``) records.
THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1")


def threshold_metrics(threshold: Mapping[str, Any] | None) -> dict[str, float]:
    """The database's test metrics for a ``threshold_block`` (none without a threshold)."""
    if threshold is None:
        return {}
    return {"threshold": threshold["value"],
            **{f"{name}_at_threshold": threshold["test"][name] for name in THRESHOLD_METRICS}}
