"""Import Keras and TensorFlow without the optional libraries they load for features hpsearch never uses.

While ``import tensorflow`` or ``import keras`` runs, TensorFlow's ``tf.lite`` imports JAX (to convert JAX
functions), Keras imports ``matplotlib.pyplot`` (for its image-gallery plots) and pandas (to slice a
DataFrame given to ``fit``; our data reaches Keras as NumPy arrays). Each import is guarded by ``try:
import x / except ImportError: x = None``, so nothing needs them, yet they cost every process that trains
(worker, ``--jobs`` fold process, command that trains in its own process) about 1.7 of the 6.4 seconds
that importing Keras takes on two cores (``scripts/bench_startup.py``).

:func:`install` makes the three raise ImportError during the first import of Keras or TensorFlow in this
process, and only then: afterwards they import normally for whoever needs them (our plots import
matplotlib, the CSV loader pandas). On the JAX backend, JAX is the backend and is not held back. Install
it only in processes that hpsearch starts: a user's own program that imports :mod:`search`, or a Dask
worker that runs our tasks among others, keeps the Keras it would get without us.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from . import first_import

#: Imported by TensorFlow or Keras at their own import, each behind ``except ImportError``.
_OPTIONAL = ("matplotlib", "pandas")
_OPTIONAL_ON_TENSORFLOW = ("jax",)
_NAMES = frozenset({"keras", "tensorflow"})


def install() -> None:
    """Hold the optional libraries back during this process's first import of Keras or TensorFlow."""
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        return
    if not any(first_import.installed(_NAMES)):
        sys.meta_path.insert(0, first_import.FirstImportFinder(_NAMES, _held_back))


def held_back() -> tuple[str, ...]:
    """The libraries the first import of Keras goes without (none that this process already imported)."""
    names = _OPTIONAL if os.environ.get("KERAS_BACKEND") == "jax" else _OPTIONAL + _OPTIONAL_ON_TENSORFLOW
    return tuple(name for name in names if name not in sys.modules)


@contextlib.contextmanager
def _held_back() -> Iterator[None]:
    names = held_back()
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment] - None makes `import name` raise ImportError
    try:
        yield
    finally:
        for name in names:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
