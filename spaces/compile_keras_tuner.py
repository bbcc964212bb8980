"""A space as KerasTuner ``HyperParameters``: ``Int``, ``Float`` and ``Choice``.

Every parameter is declared up front, before the search starts, so the oracle sees the whole space
from the first trial and no new entry appears mid-search (which would change what a resumed oracle
considers the space).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import SpaceError
from .params import CategoricalParam, FloatParam, IntParam
from .space import SearchSpace

if TYPE_CHECKING:
    import keras_tuner


def _choice_values(values: list[Any]) -> list[Any]:
    # KerasTuner's Choice holds one value type; a mix of ints and floats is a list of numbers to us.
    if {type(value) for value in values} == {int, float}:
        return [float(value) for value in values]
    return values


def declare_hyperparameters(space: SearchSpace) -> keras_tuner.HyperParameters:
    """See :func:`_declare_hyperparameters`; a range with too many values to list is refused naming
    the file."""
    try:
        return _declare_hyperparameters(space)
    except SpaceError as error:
        raise error.with_source(space.source) from None


def _declare_hyperparameters(space: SearchSpace) -> keras_tuner.HyperParameters:
    """A ``HyperParameters`` with one entry per tuned parameter, in file order."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, param in space.params.items():
        # A stepped float is a Choice too: KerasTuner counts its values with float floor division, which
        # drops the top value for ranges like [0.0, 0.3] step 0.1 (0.3 // 0.1 == 2.0) that Optuna keeps.
        stepped_float = isinstance(param, FloatParam) and param.step is not None
        if isinstance(param, CategoricalParam) and isinstance(param.choices[0], bool):
            # KerasTuner's Choice turns booleans into 0/1; Boolean and Fixed keep them booleans.
            if len(param.choices) == 2:
                hp.Boolean(name, default=param.choices[0])
            else:
                hp.Fixed(name, param.choices[0])
        elif isinstance(param, CategoricalParam) or param.grid_only or stepped_float:
            values = _choice_values(param.grid_values())
            ordered = all(isinstance(value, int | float) and not isinstance(value, bool) for value in values)
            hp.Choice(name, values, ordered=ordered)
        elif isinstance(param, IntParam):
            # KerasTuner reads a log step as a multiplier, not Optuna's additive step; log ints therefore
            # go without a step (any integer), which is what IntParam with log means.
            step = None if param.log else (param.step or 1)
            hp.Int(name, param.low, param.high, step=step, sampling="log" if param.log else "linear")
        else:
            assert isinstance(param, FloatParam)
            hp.Float(name, param.low, param.high, sampling="log" if param.log else "linear")
    return hp


def point_from_hyperparameters(space: SearchSpace, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """The point (tuned name -> plain value) a trial's ``HyperParameters`` stands for."""
    return {name: param.normalise(hp.get(name)) for name, param in space.params.items()}


def hyperparameter_values(space: SearchSpace, point: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`point_from_hyperparameters`: a point's values as the declared
    ``HyperParameters`` hold them (a stepped float or a mixed number list is a Choice of its grid values)."""
    values: dict[str, Any] = {}
    for name, param in space.params.items():
        value = point[name]
        stepped_float = isinstance(param, FloatParam) and param.step is not None
        if isinstance(param, CategoricalParam) and isinstance(param.choices[0], bool):
            values[name] = bool(value)
        elif isinstance(param, CategoricalParam) or param.grid_only or stepped_float:
            grid = param.grid_values()
            declared = _choice_values(grid)
            index = next((i for i, choice in enumerate(grid)
                          if choice == value and isinstance(choice, bool) == isinstance(value, bool)), None)
            if index is None:
                raise ValueError(f"{name}={value!r} is not among the declared values {grid!r}")
            values[name] = declared[index]
        elif isinstance(param, IntParam):
            values[name] = int(value)
        else:
            values[name] = float(value)
    return values
