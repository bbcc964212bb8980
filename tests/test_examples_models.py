"""The model-function example (examples/digits_cnn.py) runs end to end, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_digits_cnn_searches_with_every_engine_retrains_and_predicts(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(EXAMPLES / "digits_cnn.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "hpsearch predict matches keras.models.load_model on 20 rows" in done.stdout
    # Optuna's default pruner (Hyperband) may stop the second trial early: it ends PRUNED, not COMPLETE.
    counts = query(tmp_path / "hpsearch.db",
                   "SELECT s.name, s.engine, COUNT(*) FROM hp_trials t JOIN hp_studies s "
                   "ON s.id = t.study_id WHERE t.state IN ('COMPLETE', 'PRUNED') "
                   "GROUP BY s.name ORDER BY s.name")
    assert counts == [("cnn-keras-tuner", "keras-tuner", 2), ("cnn-optuna", "optuna", 2),
                      ("cnn-sklearn", "sklearn", 2)]
    assert (tmp_path / "models" / "cnn" / "model.keras").is_file()
