"""An interrupt that cannot be lost: Ctrl-C or SIGTERM on an ``hpsearch`` command (``handled``), SIGINT
from a worker's supervisor (``install``).

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal arrives. When that
is inside a finalizer (a ``__del__`` method or a weakref callback, which TensorFlow runs many of while it
trains), the interpreter reports the exception as "Exception ignored in ..." and drops it: the trial would
train on to its end instead of being recorded as interrupted. The handler here also remembers the
request, and the epoch callbacks (hpsearch.training.fit, hpsearch.results.retrain) raise it again at the next
epoch's end.
While the handler is installed, the interpreter's report of such a dropped interrupt (a traceback ending
in KeyboardInterrupt) is not printed either: the interrupt is not lost, and the command ends with its own
one-line message.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_requested = False


def _interrupt(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def _report_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` while installed: a KeyboardInterrupt dropped in a finalizer after our handler
    remembered it is not reported; anything else goes to the hook that was there before."""
    if _requested and isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    _previous_unraisablehook(unraisable)


_previous_unraisablehook = sys.unraisablehook


def install() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, and remember that they did."""
    global _previous_unraisablehook
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if sys.unraisablehook is not _report_unraisable:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _report_unraisable


@contextmanager
def handled() -> Iterator[None]:
    """While inside: as ``install``, starting with no request remembered. Then the previous handlers come
    back and the memory is cleared, so a later search in the same process (tests call the CLI's ``main``
    many times) does not start interrupted."""
    global _requested
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook
    _requested = False
    install()
    try:
        yield
    finally:
        _requested = False
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back
                signal.signal(signum, handler)


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt again if an interrupt arrived (it may have been dropped in a finalizer)."""
    if _requested:
        raise KeyboardInterrupt
