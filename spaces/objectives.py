"""Which metric a study optimises, and in which direction.

The builder compiles a fixed set of metrics per task, so the objective can be checked against the
names the model will actually report before any training starts.
"""

from __future__ import annotations

from typing import Literal

from .errors import SpaceError
from .limits import quoted

TASK_KINDS = ("binary", "multiclass", "regression")

#: ``k`` of the multiclass ``top_k_accuracy``, which is compiled only with more than ``TOP_K`` classes.
TOP_K = 5

#: What the model built for each task reports per epoch (and, with ``val_``, on the validation split):
#: binary ``precision``, ``recall``, ``f1`` and the counts at the 0.5 threshold, ``pr_auc`` the area under
#: the precision-recall curve; multiclass ``f1`` macro-averaged, ``auc`` one-vs-rest macro-averaged,
#: ``top_k_accuracy`` (k = TOP_K) with more than TOP_K classes; regression ``mae``, ``mse``, ``rmse``,
#: ``r2`` and ``mape`` (percent) in the target's units, and ``loss`` the MSE of the standardized target.
_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("loss", "accuracy", "auc", "precision", "recall", "f1", "pr_auc", "tp", "fp", "tn", "fn"),
    "multiclass": ("loss", "accuracy", "f1", "auc", "top_k_accuracy"),
    "regression": ("loss", "mae", "mse", "rmse", "r2", "mape"),
}

#: Recorded every epoch but refused as objectives: a count grows with the split's size and rewards the
#: trivial model (all negative: no false positive), so precision, recall or f1 say what is meant.
COUNTS = ("tp", "fp", "tn", "fn")

_MINIMISED = {"loss", "mse", "mae", "rmse", "mape", "msle", "mean_squared_error", "mean_absolute_error",
              "root_mean_squared_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
              "hinge", "squared_hinge", "logcosh", "huber", "poisson", "kld", "kl_divergence"}


def _check_kind(kind: str) -> None:
    if kind not in _METRICS:
        raise SpaceError(f"task kind must be one of {', '.join(TASK_KINDS)}, but got {quoted(kind)}")


def metric_names(kind: str, n_classes: int | None = None) -> list[str]:
    """Every metric the model for a ``kind`` task logs each epoch (without ``val_``), counts included.

    ``n_classes`` (multiclass) drops ``top_k_accuracy`` where there are too few classes for it; unknown
    (None) keeps it.
    """
    _check_kind(kind)
    names = list(_METRICS[kind])
    if kind == "multiclass" and n_classes is not None and n_classes <= TOP_K:
        names.remove("top_k_accuracy")
    return names


def objective_names(kind: str, n_classes: int | None = None) -> list[str]:
    """Objectives a ``kind`` task accepts, without and with the ``val_`` prefix."""
    names = [name for name in metric_names(kind, n_classes) if name not in COUNTS]
    return names + [f"val_{name}" for name in names]


def all_objective_names() -> list[str]:
    """Every name some task reports: what an ``auto`` task may be checked against before data is seen."""
    seen: dict[str, None] = {}
    for kind in TASK_KINDS:
        seen.update(dict.fromkeys(objective_names(kind)))
    return list(seen)


def objective_problem(objective: str, kind: str | None, n_classes: int | None = None) -> str | None:
    """Why ``objective`` cannot be optimised for a ``kind`` task (None: any task), or None when it can."""
    base = objective.removeprefix("val_")
    if base in COUNTS:
        return (f"objective {quoted(objective)} is a confusion count, recorded every epoch but not "
                f"an objective; "
                "optimise precision, recall, f1 or pr_auc instead")
    if kind == "multiclass" and base == "top_k_accuracy" and n_classes is not None and n_classes <= TOP_K:
        return (f"objective {quoted(objective)} needs more than {TOP_K} classes "
                f"(it is top-{TOP_K} accuracy), "
                f"but the data has {n_classes}")
    accepted = all_objective_names() if kind is None else objective_names(kind, n_classes)
    if objective not in accepted:
        where = "any task" if kind is None else f"a {kind} task"
        return (f"objective {quoted(objective)} is not a metric the model reports for {where}; "
                f"accepted objectives: {', '.join(accepted)}")
    return None


def direction_of(objective: str) -> Literal["minimize", "maximize"]:
    """``minimize`` for losses and errors (with or without ``val_``), ``maximize`` for scores."""
    base = objective.removeprefix("val_").lower()
    if base in _MINIMISED or base.endswith(("loss", "error", "crossentropy", "_deviance")):
        return "minimize"
    return "maximize"
