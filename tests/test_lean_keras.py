"""A process that hpsearch starts to train imports Keras without the libraries Keras and TensorFlow load
only for features we never use (hpsearch.runtime.lean_keras), trains, and can still import those libraries
later."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

#: Run as a worker would: install, import Keras, train; then import what was held back.
CHILD = r"""
import json, sys
import numpy as np
from hpsearch.runtime import lean_keras
lean_keras.install()
import keras
during = sorted(name for name in ("jax", "matplotlib", "pandas") if name in sys.modules)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
history = model.fit(np.ones((16, 3), "float32"), np.ones(16, "float32"), epochs=2, verbose=0)
import matplotlib.pyplot, pandas
later = pandas.DataFrame({"a": [1]}).shape == (1, 1) and matplotlib.pyplot.figure() is not None
print(json.dumps({"during": during, "backend": keras.backend.backend(),
                  "epochs": len(history.history["loss"]), "later": later}))
"""


def test_a_training_process_imports_keras_without_jax_matplotlib_or_pandas_and_can_import_them_later():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "MPLBACKEND": "agg"}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"during": [], "backend": "tensorflow", "epochs": 2, "later": True}
