"""The base estimator of a scikit-learn search: the candidates' defaults and fixed values as SciKeras
parameters, and the check that every compiled grid key reaches it.

The estimator classes and a fold's fit are training code (:mod:`hpsearch.training.scikeras_models`,
:mod:`hpsearch.training.fold_fitting`): a fold process or a Dask worker runs them without this engine.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from hpsearch.spaces import SpaceError
from hpsearch.spaces.compile_sklearn import MODEL_PREFIX, WRAPPER_PARAMS

from ...training.scikeras_models import (
    VALIDATION_SPLIT,
    SearchClassifier,
    SearchRegressor,
    build_for_scikeras,
)

__all__ = ["VALIDATION_SPLIT", "check_routing", "make_estimator"]

def make_estimator(
    task_kind: str,
    config: Mapping[str, Any],
    *,
    seed: int,
    class_weight: Mapping[int, float] | None = None,
    validation_split: float = VALIDATION_SPLIT,
) -> SearchClassifier | SearchRegressor:
    """The base estimator of a search: ``config`` (defaults and fixed values) as its parameters.

    ``batch_size`` and ``epochs`` are SciKeras' own parameters; every other builder parameter is
    ``model__<name>``. ``random_state`` makes SciKeras seed Python, NumPy and TensorFlow (and turn on op
    determinism) around each build and fit, so every fold of every candidate is reproducible.
    """
    kwargs: dict[str, Any] = {
        "model": functools.partial(build_for_scikeras, task_kind),
        "batch_size": int(config["batch_size"]),
        "epochs": int(config["epochs"]),
        "random_state": seed,
        "validation_split": validation_split,
        "verbose": 0,
        # Every other key, a model function's own parameters and reference (``model``) included.
        **{MODEL_PREFIX + name: value for name, value in config.items() if name not in WRAPPER_PARAMS},
    }
    if task_kind == "regression":
        return SearchRegressor(**kwargs)
    return SearchClassifier(class_weight=dict(class_weight) if class_weight else None, **kwargs)


def check_routing(estimator: Any, keys: list[str], source: str) -> None:
    """Refuse, before any fit, a compiled key the estimator does not have.

    SciKeras' ``set_params`` accepts any ``model__*`` name without checking it, so a misrouted key
    would only fail inside the first fit, or be silently ignored.
    """
    known = estimator.get_params(deep=False)
    unknown = [key for key in keys if key not in known]
    if unknown:
        routed = ", ".join(sorted(name for name in known if name.startswith(MODEL_PREFIX)))
        raise SpaceError(
            f"the compiled scikit-learn grid has parameter(s) {', '.join(map(repr, unknown))} that the "
            f"SciKeras estimator {type(estimator).__name__} does not take; it takes batch_size, epochs and "
            f"{routed}",
            source=source,
        )
