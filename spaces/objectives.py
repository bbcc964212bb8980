"""Which metric a study optimises, and in which direction.

The builder compiles a fixed set of metrics per task, so the objective can be checked against the
names the model will actually report before any training starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from spaces.errors import SpaceError

if TYPE_CHECKING:
    from spaces.space import SearchSpace

TASK_KINDS = ("binary", "multiclass", "regression")

_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("loss", "accuracy", "auc"),
    "multiclass": ("loss", "accuracy"),
    "regression": ("loss", "mae", "rmse"),
}

_MINIMISED = {"loss", "mse", "mae", "rmse", "mape", "msle", "mean_squared_error", "mean_absolute_error",
              "root_mean_squared_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
              "hinge", "squared_hinge", "logcosh", "huber", "poisson", "kld", "kl_divergence"}


def objective_names(kind: str) -> list[str]:
    """Metric names a model built for task ``kind`` reports, without and with the ``val_`` prefix."""
    if kind not in _METRICS:
        raise SpaceError(f"task kind must be one of {', '.join(TASK_KINDS)}, but got {kind!r}")
    names = list(_METRICS[kind])
    return names + [f"val_{name}" for name in names]


def all_objective_names() -> list[str]:
    """Every name some task reports: what an ``auto`` task may be checked against before data is seen."""
    seen: dict[str, None] = {}
    for kind in TASK_KINDS:
        seen.update(dict.fromkeys(objective_names(kind)))
    return list(seen)


def check_objective(space: SearchSpace, kind: str) -> None:
    """Refuse an objective the model built for ``kind`` would never report."""
    accepted = objective_names(kind)
    if space.objective not in accepted:
        raise SpaceError(
            f"objective {space.objective!r} is not reported for a {kind} task; "
            f"accepted objectives: {', '.join(accepted)}",
            source=space.source,
        )


def direction_of(objective: str) -> Literal["minimize", "maximize"]:
    """``minimize`` for losses and errors (with or without ``val_``), ``maximize`` for scores."""
    base = objective.removeprefix("val_").lower()
    if base in _MINIMISED or base.endswith(("loss", "error", "crossentropy", "_deviance")):
        return "minimize"
    return "maximize"
