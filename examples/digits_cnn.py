"""Your own model: digits as 8x8 images through a small CNN whose `filters` and `kernel_size` are tuned.

A notebook-style script (each block is a cell). It searches the same space with each of the three
engines (tiny budgets), retrains the best trial and exports it, then predicts from the exported file
with `hpsearch predict` and checks that plain Keras' `load_model` gives the same outputs.

Run it from any folder: it writes `hpsearch.db`, `models/` and `rows.csv` there.

    python examples/digits_cnn.py
"""

from __future__ import annotations

import subprocess
import sys

import hpsearch
import keras
import numpy as np
import pandas as pd
from hpsearch.spaces import ModelInfo
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


# %% The space tunes the function's own parameters beside the builder's (learning_rate); `model=build`
# names the function. One defined here (a script or a notebook) trains in this process; one defined in a
# module file (`model: "models:build"` in a YAML space) also trains in worker processes, with --jobs and on
# Dask.
SPACE = {
    "objective": "val_accuracy",
    "params": {
        "filters": {"type": "int", "low": 8, "high": 16, "step": 8},
        "kernel_size": {"type": "categorical", "choices": [2, 3]},
        "learning_rate": {"type": "categorical", "choices": [0.003, 0.01]},
    },
    "fixed": {"epochs": 2, "batch_size": 64},
}


def search(engine: str, algorithm: str, study: str, **engine_options: object) -> hpsearch.Study:
    """One small search of SPACE with ``build`` on the bundled digits data (2 trials)."""
    return hpsearch.run(SPACE, "digits", model=build, engine=engine, algorithm=algorithm, study=study,
                        trials=2, storage=STORAGE, progress=False, **engine_options)


# %% The same space with each engine.
study = search("optuna", "tpe", "cnn-optuna")
search("keras-tuner", "random", "cnn-keras-tuner")
search("sklearn", "random", "cnn-sklearn", cv=2)

# %% Retrain the Optuna study's best trial and export it (model.keras with its model card).
print(study.trials_dataframe()[["number", "state", "value", "params_filters", "params_kernel_size"]])
retrained = study.retrain("models/cnn", epochs=3, progress=False)
print(f"exported {retrained.path}")

# %% Predict raw rows from the exported file alone, and compare with plain Keras.
digits = load_digits()
columns = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]
pd.DataFrame(digits.data[:20], columns=columns).to_csv("rows.csv", index=False)
subprocess.run([sys.executable, "-m", "hpsearch.cli", "predict", str(retrained.path), "rows.csv",
                "--out", "predictions.csv"], check=True)
predicted = pd.read_csv("predictions.csv")
exported = keras.models.load_model(retrained.path)  # safe_mode: standard Keras layers only
outputs = exported.predict(digits.data[:20].astype("float32"), verbose=0)
probabilities = predicted[[f"probability_{label}" for label in range(10)]].to_numpy()
assert np.allclose(probabilities, outputs, atol=1e-5), "hpsearch predict and Keras disagree"
print(f"hpsearch predict matches keras.models.load_model on {len(predicted)} rows")
