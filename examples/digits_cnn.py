"""Your own model: digits as 8x8 images through a small CNN whose `filters` and `kernel_size` are tuned.

A notebook-style script (each block is a cell). It searches the same space with each of the three
engines (tiny budgets), retrains the best trial and exports it, then predicts from the exported file
with `hpsearch predict` and checks that plain Keras' `load_model` gives the same outputs.

Run it from any folder: it writes `hpsearch.db`, `space.json`, `models/` and `rows.csv` there.

    python examples/digits_cnn.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from hpsearch.results.retrain import RetrainOptions, retrain_study
from hpsearch.spaces import ModelInfo, function_reference
from hpsearch.study import run_study
from hpsearch.study_options import RunOptions
from sklearn.datasets import load_digits

STORAGE = "sqlite:///hpsearch.db"


# %% The model function: params holds the tuned values (and every other setting), info the data's shapes.
def build(params: dict, info: ModelInfo) -> keras.Model:
    """A small CNN over the 64 pixel features seen as one 8x8 grey image."""
    return keras.Sequential([
        keras.layers.Reshape((8, 8, 1)),
        keras.layers.Conv2D(params["filters"], params["kernel_size"], padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(info.output_units, activation=info.output_activation),
    ])


# %% The space names the function and tunes its own parameters beside the builder's (learning_rate).
SPACE = {
    # A function defined here (a script or a notebook) trains in this process; one defined in a module
    # file (`model: "models:build"`) also trains in worker processes, with --jobs and on Dask.
    "model": function_reference(build),
    "objective": "val_accuracy",
    "params": {
        "filters": {"type": "int", "low": 8, "high": 16, "step": 8},
        "kernel_size": {"type": "categorical", "choices": [2, 3]},
        "learning_rate": {"type": "categorical", "choices": [0.003, 0.01]},
    },
    "fixed": {"epochs": 2, "batch_size": 64},
}


def search(engine: str, algorithm: str, study: str, **engine_options: object) -> None:
    """One small search of SPACE on the bundled digits data (2 trials, or a grid's candidates)."""
    Path("space.json").write_text(json.dumps(SPACE), encoding="utf-8")
    run_study(RunOptions(space="space.json", engine=engine, algorithm=algorithm, data="digits", study=study,
                         trials=2, storage=STORAGE, progress=False, extra=dict(engine_options)))


# %% The same space with each engine.
search("optuna", "tpe", "cnn-optuna")
search("keras-tuner", "random", "cnn-keras-tuner")
search("sklearn", "random", "cnn-sklearn", cv=2)

# %% Retrain the Optuna study's best trial and export it (model.keras with its model card).
result = retrain_study("cnn-optuna", STORAGE, RetrainOptions(epochs=3, out="models/cnn", progress=False))
print(f"exported {result.model_path}: test accuracy {result.test_mean['accuracy']:.3f}")

# %% Predict raw rows from the exported file alone, and compare with plain Keras.
digits = load_digits()
columns = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]
pd.DataFrame(digits.data[:20], columns=columns).to_csv("rows.csv", index=False)
subprocess.run([sys.executable, "-m", "hpsearch.cli", "predict", str(result.model_path), "rows.csv",
                "--out", "predictions.csv"], check=True)
predicted = pd.read_csv("predictions.csv")
exported = keras.models.load_model(result.model_path)  # safe_mode: standard Keras layers only
outputs = exported.predict(digits.data[:20].astype("float32"), verbose=0)
probabilities = predicted[[f"probability_{label}" for label in range(10)]].to_numpy()
assert np.allclose(probabilities, outputs, atol=1e-5), "hpsearch predict and Keras disagree"
print(f"hpsearch predict matches keras.models.load_model on {len(predicted)} rows")
