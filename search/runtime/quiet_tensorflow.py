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

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from . import first_import

#: absl/TSL C++ log lines (``I0000 00:00:1796265213.125733    6517 port.cc:153] ...``) and absl's notice.
_CPP_LOG_LINE = re.compile(
    r"^([IWE]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] |WARNING: All log messages before absl::InitializeLog)"
)


def install() -> None:
    """Quiet the next ``import tensorflow`` of this process, unless it already happened or the user asked
    TensorFlow for its informational lines (``TF_CPP_MIN_LOG_LEVEL=0``)."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        return
    if not any(first_import.installed(_NAMES)):
        sys.meta_path.insert(0, first_import.FirstImportFinder(_NAMES, _stderr_captured))


_NAMES = frozenset({"tensorflow"})


@contextlib.contextmanager
def _stderr_captured() -> Iterator[None]:
    """File descriptor 2 pointed at a temporary file; then every captured line but TensorFlow's C++ log
    lines written to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _CPP_LOG_LINE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
