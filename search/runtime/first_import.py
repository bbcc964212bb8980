"""A hook on the first import of a package in this process: its own loader, run inside a context.

``hpsearch.runtime.quiet_tensorflow`` (TensorFlow's C++ start-up lines kept off the terminal) and
``hpsearch.runtime.lean_keras`` (Keras imported without libraries it only loads for features we do not use)
each
change how TensorFlow or Keras is first imported; both are a :class:`FirstImportFinder` whose loader wraps
the package's own ``exec_module``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any


class FirstImportFinder(importlib.abc.MetaPathFinder):
    """On the first import of one of ``names``, runs that package's ``exec_module`` inside ``around()``
    and leaves ``sys.meta_path``: the package's own imports, and every later one, find their modules
    normally. The spec comes from the remaining finders, so two such hooks compose."""

    def __init__(self, names: frozenset[str], around: Callable[[], AbstractContextManager[Any]]) -> None:
        self.names = names
        self.around = around

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname not in self.names:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _AroundLoader(spec.loader, self.around)
        return spec


def installed(names: frozenset[str]) -> Iterator[FirstImportFinder]:
    """The hooks on ``names`` waiting in ``sys.meta_path`` (so that installing twice adds none)."""
    return (finder for finder in sys.meta_path
            if isinstance(finder, FirstImportFinder) and finder.names == names)


class _AroundLoader:
    """The package's own loader, with its ``exec_module`` run inside the hook's context."""

    def __init__(self, loader: Any, around: Callable[[], AbstractContextManager[Any]]) -> None:
        self._loader = loader
        self._around = around

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with self._around():
            self._loader.exec_module(module)
