"""Keep TensorFlow's C++ start-up lines off the user's terminal.

TensorFlow 2.20 prints, while ``import tensorflow`` loads its C++ library, a oneDNN notice preceded by
absl's "All log messages before absl::InitializeLog() is called are written to STDERR", twice, straight to
file descriptor 2: they come before its logging reads ``TF_CPP_MIN_LOG_LEVEL``, so that variable cannot
hide them. Commands that train in their own process (``retrain``, ``predict``, ``run --in-process``) would
show them between our own lines. :func:`install` arranges for the first import of TensorFlow to run with
descriptor 2 pointed at a temporary file; afterwards every captured line that is not such a C++ log line
is written to stderr, so a Python warning raised during the import still shows.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: absl/TSL C++ log lines (``I0000 00:00:1796265213.125733    6517 port.cc:153] ...``) and absl's notice.
_CPP_LOG_LINE = re.compile(
    r"^([IWE]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] |WARNING: All log messages before absl::InitializeLog)"
)


def install() -> None:
    """Quiet the next ``import tensorflow`` of this process, unless it already happened or the user asked
    TensorFlow for its informational lines (``TF_CPP_MIN_LOG_LEVEL=0``)."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import to quiet; the package's own imports find it normally
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """The package's own loader, with its ``exec_module`` run under the redirect."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                    if not _CPP_LOG_LINE.match(line):
                        sys.stderr.write(line)
                sys.stderr.flush()
