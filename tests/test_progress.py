"""Progress during a search: a bar redrawn in place on a terminal, one plain line per ended trial in a log;
and no TensorFlow start-up lines among ours."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.conftest import hpsearch_command, query
from tests.helpers import run_hpsearch, write_space

pytestmark = pytest.mark.slow

SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 16}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 2, batch_size: 64}
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_hpsearch(tmp_path, "run", write_space(tmp_path, SPACE), "--data", "iris", "--trials", "3",
                        "--pruner", "none", "--storage", tmp_path / "p.db", *args, check=False,
                        env={"TF_CPP_MIN_LOG_LEVEL": "2"})


def _values(tmp_path: Path, study: str) -> dict[int, float]:
    rows = query(tmp_path / "p.db", "SELECT t.number, t.value FROM hp_trials t JOIN hp_studies s "
                 "ON s.id = t.study_id WHERE s.name = ?", (study,))
    return dict(rows)


def test_a_run_logged_to_a_file_prints_one_line_per_ended_trial_not_a_redrawn_bar(tmp_path):
    # Workers (the default): the supervisor sees trials end in the store.
    done = _run(tmp_path, "--study", "w")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr, "a bar redrawn in place fills a log with copies of itself"
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    counts = [re.match(r"\[(\d)/3\] trials done; best val_accuracy ([\d.]+)$", line) for line in lines]
    assert all(counts), lines
    assert counts[-1][1] == "3"
    numbers = [int(match[1]) for match in counts]
    assert sorted(set(numbers)) == numbers, "one line per change"
    assert float(counts[-1][2]) == pytest.approx(max(_values(tmp_path, "w").values()), abs=5e-5)

    # In one process: each ended trial is named, with its value.
    done = _run(tmp_path, "--study", "i", "--in-process")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    values = _values(tmp_path, "i")
    best = None
    for count, line in enumerate(lines, 1):
        match = re.match(r"\[(\d)/3\] trial #(\d) complete, val_accuracy ([\d.]+); "
                         r"best val_accuracy ([\d.]+)$", line)
        assert match and int(match[1]) == count, line
        value = values[int(match[2])]
        best = value if best is None else max(best, value)
        assert float(match[3]) == pytest.approx(value, abs=5e-5)
        assert float(match[4]) == pytest.approx(best, abs=5e-5)
    assert len(lines) == 3

    # Retraining the best: the epochs' progress as lines too, the last one at the end of training.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = hpsearch_command("retrain", "i", "--epochs", "4", "--patience", "10",
                               "--storage", tmp_path / "p.db",
                               "--out", tmp_path / "model")
    retrained = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                               check=False)
    assert retrained.returncode == 0, retrained.stderr
    assert "\r" not in retrained.stderr
    # Nor TensorFlow's C++ start-up lines, which TF_CPP_MIN_LOG_LEVEL cannot hide.
    for chatter in ("absl::InitializeLog", "port.cc"):
        assert chatter not in retrained.stderr and chatter not in done.stderr
    epochs = [line for line in retrained.stderr.splitlines() if line.startswith("seed 0: epoch")]
    assert epochs and re.fullmatch(r"seed 0: epoch 4/4, val_accuracy [\d.]+", epochs[-1]), retrained.stderr


def test_a_run_on_a_terminal_draws_a_progress_bar(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        hpsearch_command("run", space, "--data", "iris", "--trials", "2", "--pruner", "none", "--study", "t",
                         "--storage", tmp_path / "p.db"),
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=follower,
    )
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 600)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0, shown.decode(errors="replace")
    os.close(leader)
    text = shown.decode(errors="replace")
    assert "2/2" in text and "trial/s" in text and "\r" in text, text
    assert "trials done" not in text
