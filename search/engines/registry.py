"""Which engine a name stands for: the lookup the CLI, the service and studies go through.

It sits above the engines (each engine module imports ``base``; only this module imports the engines), so
the interface in ``base`` never reaches up to its own subclasses. Engines are built lazily: choosing one
must not import the others' libraries (Optuna, KerasTuner, scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from .base import Engine


def _optuna_engine() -> Engine:
    from .optuna.engine import OptunaEngine

    return OptunaEngine()


def _sklearn_engine() -> Engine:
    from .sklearn.engine import SklearnEngine

    return SklearnEngine()


def _keras_tuner_engine() -> Engine:
    from .keras_tuner.engine import KerasTunerEngine

    return KerasTunerEngine()


#: Engine name (as ``--engine`` and the study record spell it) -> a function that imports and builds it.
_ENGINE_FACTORIES: dict[str, Callable[[], Engine]] = {
    "optuna": _optuna_engine, "keras-tuner": _keras_tuner_engine, "sklearn": _sklearn_engine,
}


def available_engines() -> tuple[str, ...]:
    """The engine names ``--engine`` accepts, in the order help and listings show them."""
    return tuple(_ENGINE_FACTORIES)


def get_engine(name: str) -> Engine:
    """A new instance of the engine called ``name``, importing only that engine's library.

    Raises:
        UsageError: ``name`` is not one of :func:`available_engines`.
    """
    try:
        factory = _ENGINE_FACTORIES[name]
    except KeyError:
        raise UsageError(
            f"--engine must be one of {', '.join(available_engines())}, but got '{name}'"
        ) from None
    return factory()
