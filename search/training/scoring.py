"""Objective -> scikit-learn scoring: what a study's objective means on a held-out fold.

The sklearn engine scores each fold with scikit-learn, the other engines read Keras' own metric from the
epoch logs; the table below pairs them so that one objective means the same in every engine: binary
``precision``/``recall``/``f1`` at the 0.5 threshold (Keras' metrics and SciKeras' ``predict`` agree
on it), ``pr_auc`` as average precision, multiclass ``f1`` macro-averaged and ``auc`` one-vs-rest, and so
on. Three objectives have no scikit-learn scorer of the same meaning and get their own here:
``top_k_accuracy`` (scikit-learn's scorer takes k=2; Keras' and ours k=5), ``mape`` (Keras reports
percent, scikit-learn a fraction) and the regression ``loss`` (the MSE of the target standardized by
the training rows' mean and standard deviation, as the builder's loss is).

The held-out fold plays the part of validation data, so ``val_x`` and ``x`` map alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpsearch.spaces import direction_of
from hpsearch.spaces.objectives import TOP_K

from ..errors import UsageError

#: Our scorers that scikit-learn does not have under these names (see :func:`scorer`).
TOP_K_SCORING = f"top_k_accuracy(k={TOP_K})"
MAPE_PERCENT_SCORING = "neg_mean_absolute_percentage_error(percent)"
#: A regression model's loss: the MSE of the target standardized by the fit's own training rows.
STANDARDIZED_MSE_SCORING = "neg_mean_squared_error(standardized)"

#: Objective (without ``val_``) -> scikit-learn scoring computed on each held-out fold.
BINARY_SCORING = {
    "accuracy": "accuracy",
    "loss": "neg_log_loss",
    "auc": "roc_auc",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "pr_auc": "average_precision",
}
MULTICLASS_SCORING = {
    "accuracy": "accuracy",
    "loss": "neg_log_loss",
    "f1": "f1_macro",
    "auc": "roc_auc_ovr",
    "top_k_accuracy": TOP_K_SCORING,
}
REGRESSION_SCORING = {
    # The builder's regression loss is the MSE of the standardized target; `mse` is in target units.
    "loss": STANDARDIZED_MSE_SCORING,
    "mae": "neg_mean_absolute_error",
    "mse": "neg_mean_squared_error",
    "rmse": "neg_root_mean_squared_error",
    "r2": "r2",
    "mape": MAPE_PERCENT_SCORING,
}
_TABLES = {"binary": BINARY_SCORING, "multiclass": MULTICLASS_SCORING, "regression": REGRESSION_SCORING}


@dataclass(frozen=True)
class Scoring:
    """The scikit-learn scoring standing for a study's objective.

    Scikit-learn maximises every score (losses are negated: ``neg_log_loss``); a trial's value is in the
    objective's own sense, ``sign * mean_test_score``, so ``hpsearch best`` (minimising a loss) ranks
    candidates exactly as ``GridSearchCV`` does (maximising the negated loss).
    """

    name: str
    sign: int


def scoring_for(objective: str, task: str) -> Scoring:
    """The scoring for ``objective`` on a ``task`` (binary, multiclass, regression) study."""
    base = objective.removeprefix("val_")
    table = _TABLES.get(task, BINARY_SCORING)
    name = table.get(base)
    if name is None:
        raise UsageError(
            f"objective {objective!r} has no scikit-learn scoring for a {task} task; engine 'sklearn' "
            f"accepts {', '.join(sorted({*table, *(f'val_{key}' for key in table)}))}"
        )
    sign = -1 if direction_of(objective) == "minimize" else 1
    # A minimised objective must map to a negated (neg_*) score and a maximised one to a plain score.
    assert (sign == -1) == name.startswith("neg_"), (objective, name)
    return Scoring(name, sign)


def _top_k_accuracy(estimator: Any, x: Any, y: Any) -> float:
    """Top-k accuracy over every class the fitted estimator knows (a fold may lack one)."""
    from sklearn.metrics import top_k_accuracy_score

    return float(top_k_accuracy_score(y, estimator.predict_proba(x), k=TOP_K, labels=estimator.classes_))


def _mape_percent(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import mean_absolute_percentage_error

    return 100.0 * float(mean_absolute_percentage_error(y_true, y_pred))


def _standardized_mse(estimator: Any, x: Any, y: Any) -> float:
    """Minus the MSE divided by the variance of the targets the estimator trained on (its
    ``target_std_``, set by ``SearchRegressor`` for each fit): the builder's loss, on held-out rows."""
    from sklearn.metrics import mean_squared_error

    std = float(getattr(estimator, "target_std_", 1.0))
    return -float(mean_squared_error(y, estimator.predict(x))) / std**2


def scorer(estimator: Any, name: str) -> Any:
    """The scorer for scoring ``name``: ``check_scoring``'s, or ours for those of our own."""
    from sklearn.metrics import check_scoring, make_scorer

    if name == TOP_K_SCORING:
        return _top_k_accuracy
    if name == STANDARDIZED_MSE_SCORING:
        return _standardized_mse
    if name == MAPE_PERCENT_SCORING:
        return make_scorer(_mape_percent, greater_is_better=False)
    return check_scoring(estimator, name)
