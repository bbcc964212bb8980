"""A space as Optuna distributions, ``suggest_*`` calls and a ``GridSampler`` search space."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .params import CategoricalParam, FloatParam, IntParam
from .space import SearchSpace

if TYPE_CHECKING:
    import optuna


def to_distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One Optuna distribution per tuned parameter (for ``study.ask(fixed_distributions)``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    distributions: dict[str, Any] = {}
    for name, param in space.params.items():
        if isinstance(param, CategoricalParam) or param.grid_only:
            distributions[name] = CategoricalDistribution(param.grid_values())
        elif isinstance(param, IntParam):
            distributions[name] = IntDistribution(param.low, param.high, log=param.log, step=param.step or 1)
        else:
            assert isinstance(param, FloatParam)
            distributions[name] = FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return distributions


def suggest_point(space: SearchSpace, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """Ask ``trial`` for every tuned parameter, in file order; return the point as plain values."""
    point: dict[str, Any] = {}
    for name, param in space.params.items():
        if isinstance(param, CategoricalParam) or param.grid_only:
            value: Any = trial.suggest_categorical(name, param.grid_values())
        elif isinstance(param, IntParam):
            value = trial.suggest_int(name, param.low, param.high, step=param.step or 1, log=param.log)
        else:
            assert isinstance(param, FloatParam)
            value = trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
        point[name] = param.normalise(value)
    return point


def to_grid_search_space(space: SearchSpace) -> dict[str, list[Any]]:
    """``GridSampler`` search space; raises :class:`SpaceError` for a parameter with no finite grid."""
    space.grid_size()
    return {name: param.grid_values() for name, param in space.params.items()}
