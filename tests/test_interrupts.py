"""An interrupt (a worker's, or Ctrl-C on `hpsearch run --in-process`) is never lost, even when Python
drops the KeyboardInterrupt in a finalizer."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

#: SIGINT handled while a ``__del__`` runs: Python reports the KeyboardInterrupt and drops it.
DROPPED_IN_A_FINALIZER = """\
import os, signal
from search import interrupts

interrupts.install()

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100000):
            pass  # the handler runs here, inside the finalizer

Finalized()
print("went on", flush=True)
try:
    interrupts.raise_if_requested()
except KeyboardInterrupt:
    print("interrupted after all", flush=True)
"""


def test_an_interrupt_dropped_in_a_finalizer_is_raised_again():
    done = subprocess.run([sys.executable, "-c", DROPPED_IN_A_FINALIZER], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "Exception ignored" in done.stderr and "KeyboardInterrupt" in done.stderr, done.stderr
    assert done.stdout.splitlines() == ["went on", "interrupted after all"], done.stderr


def test_the_epoch_callback_raises_a_remembered_interrupt(monkeypatch):
    import keras

    from search import interrupts
    from search.training import EpochRecorderCallback

    epochs: list[int] = []
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((8, 2)), np.zeros((8, 1))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[EpochRecorderCallback(lambda e, _: epochs.append(e))])
    assert epochs == [0, 1], "no interrupt, no effect"
    monkeypatch.setattr(interrupts, "_requested", True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochRecorderCallback(lambda e, _: epochs.append(e))])
    assert epochs == [0, 1], "stopped at the first epoch's end, before recording it"


def test_the_cli_remembers_an_interrupt_only_while_a_command_runs():
    """``hpsearch`` commands run inside ``handled()``: SIGINT and SIGTERM raise and are remembered there,
    and afterwards the previous handlers are back and nothing is remembered (tests run many commands in one
    process; a new search must not start interrupted)."""
    from search import interrupts

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), interrupts.handled():
        signal.raise_signal(signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    interrupts.raise_if_requested()  # does not raise: the memory went with the command

    with interrupts.handled():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # as if dropped in a finalizer
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_requested()
