"""A space as scikit-learn search input, for a SciKeras wrapper around :func:`spaces.build_model`.

SciKeras takes ``batch_size`` and ``epochs`` itself (they are arguments of ``fit``), and passes every
``model__<name>`` parameter on to the model-building function; the routing below follows that split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import SpaceError
from .hyperparameters import plain
from .params import CategoricalParam, FloatParam, IntParam
from .space import SearchSpace

#: Tuned names SciKeras handles as its own (fit) parameters rather than passing to the model function.
WRAPPER_PARAMS = ("batch_size", "epochs")
MODEL_PREFIX = "model__"


def _routed(name: str) -> str:
    return name if name in WRAPPER_PARAMS else MODEL_PREFIX + name


def to_param_grid(space: SearchSpace) -> dict[str, list[Any]]:
    """``GridSearchCV`` ``param_grid``; raises :class:`SpaceError` for a parameter with no finite grid."""
    space.grid_size()  # fails with the file named, before any partial grid is built
    return {_routed(name): param.grid_values() for name, param in space.params.items()}


class LogUniformInt:
    """Integers drawn log-uniformly from ``[low, high]``: SciPy has no such discrete distribution.

    Draws ``exp(uniform(log(low), log(high + 1)))`` and floors it, the same scheme KerasTuner and
    Optuna use for log-scaled ints, so every integer in range can come out, small ones more often.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def rvs(self, size: int | None = None, random_state: Any = None) -> Any:
        import numpy as np
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        draws = np.exp(rng.uniform(math.log(self.low), math.log(self.high + 1), size=size))
        values = np.clip(np.floor(draws), self.low, self.high).astype(int)
        return int(values) if size is None else values

    def __repr__(self) -> str:
        return f"LogUniformInt({self.low}, {self.high})"


def to_param_distributions(space: SearchSpace) -> dict[str, Any]:
    """See :func:`_param_distributions`; a range with too many values to list is refused naming the
    file."""
    try:
        return _param_distributions(space)
    except SpaceError as error:
        raise error.with_source(space.source) from None


def _param_distributions(space: SearchSpace) -> dict[str, Any]:
    """``RandomizedSearchCV`` ``param_distributions``: SciPy distributions for ranges, lists otherwise.

    A stepped range becomes the list of its values (sampled uniformly), which keeps the draws on the
    same lattice Optuna and KerasTuner use; a grid-only parameter becomes its grid.
    """
    from scipy import stats

    distributions: dict[str, Any] = {}
    for name, param in space.params.items():
        if isinstance(param, CategoricalParam) or param.grid_only:
            dist: Any = param.grid_values()
        elif isinstance(param, IntParam):
            if param.log:
                dist = LogUniformInt(param.low, param.high)
            elif param.step not in (None, 1):
                dist = param.grid_values()
            else:
                dist = stats.randint(param.low, param.high + 1)
        else:
            assert isinstance(param, FloatParam)
            if param.step is not None:
                dist = param.grid_values()
            elif param.log:
                dist = stats.loguniform(param.low, param.high)
            else:
                dist = stats.uniform(param.low, param.high - param.low)
        distributions[_routed(name)] = dist
    return distributions


def config_from_sklearn_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A point (tuned name -> plain value) from sklearn's ``best_params_`` / ``cv_results_['params']``."""
    return {name.removeprefix(MODEL_PREFIX): plain(value) for name, value in params.items()}
