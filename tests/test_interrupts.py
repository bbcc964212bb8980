"""An interrupt (a worker's, or Ctrl-C on `hpsearch run --in-process`) is never lost, even when Python
drops the KeyboardInterrupt in a finalizer."""

from __future__ import annotations

import os
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
from hpsearch import interrupts

interrupts.install()

class Finalized:
    def __del__(self):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100000):
                pass  # the handler runs here, inside the finalizer
        except KeyboardInterrupt:
            print("raised in the finalizer", flush=True)
            raise  # and Python drops it

class Broken:
    def __del__(self):
        raise ValueError("a finalizer's own error")

Finalized()
print("went on", flush=True)
try:
    interrupts.raise_if_requested()
except KeyboardInterrupt:
    print("interrupted after all", flush=True)
Broken()
"""


def test_an_interrupt_dropped_in_a_finalizer_is_raised_again_without_a_traceback():
    done = subprocess.run([sys.executable, "-c", DROPPED_IN_A_FINALIZER], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.stdout.splitlines() == ["raised in the finalizer", "went on", "interrupted after all"], \
        done.stderr
    # The dropped interrupt is not reported (it was not lost); other errors in finalizers still are.
    assert "KeyboardInterrupt" not in done.stderr, done.stderr
    assert done.stderr.count("Exception ignored") == 1 and "a finalizer's own error" in done.stderr


def test_the_epoch_callback_raises_a_remembered_interrupt(monkeypatch):
    import keras
    from hpsearch import interrupts
    from hpsearch.training.fit import EpochRecorderCallback

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
    from hpsearch import interrupts

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


#: A ``sitecustomize`` module (on PYTHONPATH) for the run below: the first time an epoch batch after the
#: first epoch is written, a finalizer runs that receives Ctrl-C, so Python drops the KeyboardInterrupt.
DROP_CTRL_C_MID_TRIAL = """\
import os
import signal

flag = os.environ.get("TEST_DROP_CTRL_C")
if flag:
    from hpsearch.storage.repository import Storage

    original = Storage._add_epochs

    class Finalized:
        def __del__(self):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(100000):
                    pass  # the handler runs here, inside the finalizer
            except KeyboardInterrupt:
                open(flag + ".raised", "w").close()
                raise  # and Python drops it

    def _add_epochs(self, connection, trial_id, epochs):
        if max(epoch for epoch, _, _ in epochs) >= 1 and not os.path.exists(flag):
            open(flag, "w").close()
            Finalized()
        return original(self, connection, trial_id, epochs)

    Storage._add_epochs = _add_epochs
"""

LONG_TRIALS = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 8, high: 16}
fixed: {n_hidden: 1, epochs: 40, batch_size: 32}
"""


def test_ctrl_c_dropped_in_a_finalizer_still_stops_an_in_process_search(tmp_path):
    """`hpsearch run --in-process` trains in the CLI's own process: a Ctrl-C that Python drops inside a
    finalizer still stops the search at the next epoch's end, the trial recorded as interrupted, exit 130
    (before, the search trained on to the end of its budget and exited 0), and the user sees the one-line
    message, not the interpreter's report of the dropped KeyboardInterrupt."""
    from tests.conftest import hpsearch_command, query

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DROP_CTRL_C_MID_TRIAL)
    space = tmp_path / "long.yaml"
    space.write_text(LONG_TRIALS)
    dropped = tmp_path / "dropped"
    db = tmp_path / "i.db"
    env = {**os.environ, "PYTHONPATH": str(hook), "TEST_DROP_CTRL_C": str(dropped),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(hpsearch_command("run", space, "--data", "digits", "--trials", "3", "--study", "i",
                                           "--storage", db, "--pruner", "none", "--quiet", "--in-process"),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert dropped.exists(), "the hook ran"
    assert Path(f"{dropped}.raised").exists(), "the interrupt was raised inside the finalizer"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode == 130, done.stderr
    assert "resume with: hpsearch resume i" in done.stderr
    rows = query(db, "SELECT number, state, interrupted, epochs_run FROM hp_trials ORDER BY number")
    assert [(state, interrupted) for _, state, interrupted, _ in rows] == [("FAILED", 1)], rows
    assert 2 <= rows[0][3] < 40, "stopped mid-trial, after the epochs recorded before the Ctrl-C"
