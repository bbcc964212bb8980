"""A worker's interrupt (SIGINT from its supervisor, SIGTERM from a job scheduler) that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal arrives. When that
is inside a finalizer (a ``__del__`` method or a weakref callback, which TensorFlow runs many of while it
trains), the interpreter reports the exception as "Exception ignored in ..." and drops it: the trial would
train on to its end instead of being recorded as interrupted. The handler here also remembers the
request, and the trial's epoch callback (search.training) raises it again at the next epoch's end.
"""

from __future__ import annotations

import signal
from typing import Any

_requested = False


def _interrupt(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, and remember that they did."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt again if an interrupt arrived (it may have been dropped in a finalizer)."""
    if _requested:
        raise KeyboardInterrupt
