"""hpsearch: hyperparameter search for Keras models, from the command line or from Python.

The Python API::

    import hpsearch

    study = hpsearch.run("default", "digits", trials=10)   # or a DataFrame with target="y"
    study.best_params, study.trials_dataframe()
    hpsearch.load_study(study.name).resume(trials=20)
    hpsearch.list_studies()

``run``, ``load_study``, ``list_studies``, ``Study`` and ``Retrained`` are loaded on first use: ``import
hpsearch`` itself imports nothing heavy. Heavy libraries (TensorFlow, Keras, KerasTuner, Optuna,
scikit-learn) are imported inside the functions that need them, so ``hpsearch --help`` and the query
commands answer without loading TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .python_api import list_studies, load_study, run
    from .study_handle import Retrained, Study

# The API reference (docs/reference/api.md) lists them in this order.
__all__ = ["run", "load_study", "list_studies", "Study", "Retrained"]

#: Where each public name lives; imported when first asked for.
_LAZY = {
    "run": "python_api", "load_study": "python_api", "list_studies": "python_api",
    "Study": "study_handle", "Retrained": "study_handle",
}


def __getattr__(name: str) -> Any:
    """Import the public API on first use (PEP 562), so ``import hpsearch`` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
