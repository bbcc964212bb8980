"""The training-function example runs as a user would run it: a script in a fresh folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import query

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sklearn_halving.py"


def test_sklearn_halving_example_halves_and_records_every_reported_epoch(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "12 of 13 trials ended on lower rungs" in done.stdout
    db = tmp_path / "sklearn_halving.db"
    states = [state for (state,) in query(db, "SELECT state FROM hp_trials ORDER BY number")]
    assert states == ["PRUNED"] * 12 + ["COMPLETE"]
    # Every epoch the function reported is recorded: 9 x 1 + 3 x 3 + 1 x 9.
    assert query(db, "SELECT COUNT(*) FROM hp_trial_epochs")[0][0] == 27
    assert query(db, "SELECT SUM(epochs_run) FROM hp_trials")[0][0] == 27
