"""An interrupt that cannot be lost: Ctrl-C or SIGTERM on an ``hpsearch`` command (``handled``), SIGINT
from a worker's supervisor (``install``).

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal arrives. When that
is inside a finalizer (a ``__del__`` method or a weakref callback, which TensorFlow runs many of while it
trains), the interpreter reports the exception as "Exception ignored in ..." and drops it: the trial would
train on to its end instead of being recorded as interrupted. The handler here also remembers the
request, and the epoch callbacks (search.training, search.retrain) raise it again at the next epoch's end.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def handled() -> Iterator[None]:
    """While inside: as ``install``, starting with no request remembered. Then the previous handlers come
    back and the memory is cleared, so a later search in the same process (tests call the CLI's ``main``
    many times) does not start interrupted."""
    global _requested
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    _requested = False
    install()
    try:
        yield
    finally:
        _requested = False
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back
                signal.signal(signum, handler)


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt again if an interrupt arrived (it may have been dropped in a finalizer)."""
    if _requested:
        raise KeyboardInterrupt
