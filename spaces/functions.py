"""The user's own functions a space names: a model function (``model:``) or a training function (``train:``).

A space refers to a function by a ``package.module:function`` reference, so a stored study says which
code it ran and a worker process imports that code by name. A reference in a space file is the user's own
code: importing it is the feature, as ``python -m`` would.

Python callers may pass the function itself: :func:`function_reference` turns it into its reference.
A function that another process cannot import by name (a lambda, a nested function, one defined in a
script's ``__main__`` or a notebook) is kept in a registry of this process, so this process can still
resolve its reference; :func:`importable_in_other_processes` tells the study to train such a study's
trials here, in this process.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from .errors import SpaceError
from .limits import quoted

#: ``package.module:qualified.name``: dotted identifiers on both sides (``<lambda>``, ``<locals>`` allowed
#: in the function's part for registered functions).
_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_<][\w<>]*(\.[A-Za-z_<][\w<>]*)*$")
_MAX_REFERENCE_CHARS = 300

#: Functions of this process that other processes cannot import, by reference (the latest wins: a
#: notebook cell run again redefines its function under the same name).
_REGISTERED: dict[str, Callable[..., Any]] = {}


def check_reference(reference: Any, what: str) -> str:
    """Check that ``reference`` has the ``package.module:function`` form; return it.

    Args:
        reference: the value of a space's ``model:`` or ``train:`` key.
        what: the key, for the message (``model`` or ``train``).

    Returns:
        The reference, unchanged.

    Raises:
        SpaceError: naming the key, when the value is not a string of that form.
    """
    if (not isinstance(reference, str) or len(reference) > _MAX_REFERENCE_CHARS
            or not _REFERENCE.match(reference)):
        raise SpaceError(f"`{what}` must name a function as \"package.module:function\", but got "
                         f"{quoted(reference)}")
    return reference


def function_reference(fn: Callable[..., Any]) -> str:
    """The ``module:qualname`` reference of ``fn``, registered in this process when it needs to be.

    A lambda, a nested function or a function defined in ``__main__`` (a script run directly or a notebook)
    cannot be imported by name elsewhere: it is registered here so that :func:`import_function` finds it
    in this process, and :func:`importable_in_other_processes` says False for its reference.

    Args:
        fn: a plain Python function (or other callable with ``__module__`` and ``__qualname__``).

    Returns:
        The reference, e.g. ``models:build``.

    Raises:
        SpaceError: ``fn`` is not callable or has no module and qualified name.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or not isinstance(module, str) or not isinstance(qualname, str):
        raise SpaceError(f"a model or training function must be a Python function, but got {quoted(fn)}")
    reference = f"{module}:{qualname}"
    if not _importable_by_name(module, qualname) or _resolve(module, qualname) is not fn:
        _REGISTERED[reference] = fn
    else:
        _REGISTERED.pop(reference, None)
    return reference


def _importable_by_name(module: str, qualname: str) -> bool:
    return module != "__main__" and "<" not in qualname


def _resolve(module: str, qualname: str) -> Any:
    """The object ``module:qualname`` names when it imports, else None (no error)."""
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target
    except Exception:  # noqa: BLE001 - any failure only means "not importable by name"
        return None


def importable_in_other_processes(reference: str) -> bool:
    """Whether a fresh process (a worker, a Dask task, a later ``hpsearch resume``) can import ``reference``.

    False for functions of ``__main__`` (a script or a notebook), lambdas, nested functions and any other
    function known only through this process's registry.

    Args:
        reference: a ``module:qualname`` reference.

    Returns:
        True when the reference names a module-level function of an importable module.
    """
    module, _, qualname = reference.partition(":")
    return _importable_by_name(module, qualname) and reference not in _REGISTERED


def _working_directory_importable() -> None:
    """Let ``models:build`` find ``models.py`` in the working directory, as ``python -m`` would.

    The ``hpsearch`` console script puts its own folder first on ``sys.path``, not the working directory.
    The directory goes last, so it never shadows an installed package.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def known_in_this_process(reference: str) -> bool:
    """Whether this process can resolve ``reference``: registered here, or importable by name.

    Args:
        reference: a ``module:qualname`` reference.

    Returns:
        False for a ``__main__``, lambda or nested function reference this process never registered
        (a study made in a notebook, resumed from the shell).
    """
    return reference in _REGISTERED or importable_in_other_processes(reference)


def import_function(reference: str, what: str) -> Callable[..., Any]:
    """The function ``reference`` names: from this process's registry, else imported by name.

    Args:
        reference: ``package.module:function`` (``function`` may be dotted: ``Class.method``).
        what: what the function is, for messages (``model function``, ``training function``).

    Returns:
        The callable.

    Raises:
        SpaceError: one sentence naming the reference, when its module does not import (with the import
            error's first line), the attribute is missing, or it is not callable.
    """
    check_reference(reference, "model" if what.startswith("model") else "train")
    if reference in _REGISTERED:
        return _REGISTERED[reference]
    module_name, _, qualname = reference.partition(":")
    if not _importable_by_name(module_name, qualname):
        # Its process's __main__ (a notebook, a script) or a lambda is gone: there is nothing to import.
        raise SpaceError(f"{what} {quoted(reference)} was defined in a notebook, a script or a lambda of "
                         "another process and cannot be imported here; define it at the top level of a "
                         "module file (e.g. models.py) and name it as models:build")
    _working_directory_importable()
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - whatever the user's module raises is reported, in one line
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise SpaceError(f"{what} {quoted(reference)} cannot be imported: {type(error).__name__}: {first} "
                         f"(the module must be importable from the working directory or the Python path)"
                         ) from None
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise SpaceError(f"{what} {quoted(reference)} cannot be found: module {quoted(module_name)} has "
                             f"no attribute {quoted(part)}")
        target = getattr(target, part)
    if not callable(target):
        raise SpaceError(f"{what} {quoted(reference)} must be a function, but it is a "
                         f"{type(target).__name__}")
    return target
