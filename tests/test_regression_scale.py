"""Regression trains on the standardized target and reports in the target's own units, in every path:
search (Keras engines and scikit-learn folds), retrain, the exported model and ``hpsearch predict``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

#: Plain SGD at 0.1: on the raw diabetes targets (mean ~150, variance ~5900) it diverged in the first
#: epoch; on the standardized target it is an ordinary learning rate.
SGD_SPACE = """\
objective: val_mse
params:
  n_neurons: {type: categorical, choices: [16]}
fixed: {n_hidden: 1, epochs: 3, batch_size: 32, optimizer: sgd, learning_rate: 0.1}
"""


@pytest.fixture
def diabetes():
    from hpsearch.data import load_dataset

    return load_dataset("diabetes", seed=0)


def test_keras_engines_train_standardized_and_report_target_units(cli, tmp_path, diabetes):
    space = tmp_path / "sgd.yaml"
    space.write_text(SGD_SPACE)
    result = cli("run", space, "--data", "diabetes", "--trials", "1", "--study", "r", "--quiet",
                 "--in-process")
    assert result.code == 0, result.err
    [trial] = json.loads(cli("trials", "r", "--json").out)
    assert trial["state"] == "COMPLETE", trial["error"]
    curves = trial["curves"]
    variance = float(np.var(diabetes.y_train))
    # The first epoch already beats predicting the mean (MSE = variance); raw-scale training started at
    # mean**2 + variance, about 29000, and this learning rate diverged.
    assert curves["val_mse"][0] < variance
    # mse, rmse and mae are in target units; the loss is the standardized MSE (MSE / train variance).
    assert curves["val_rmse"][-1] == pytest.approx(np.sqrt(curves["val_mse"][-1]), rel=1e-3)
    assert curves["val_loss"][-1] == pytest.approx(curves["val_mse"][-1] / variance, rel=1e-3)
    assert 20 < curves["val_mae"][-1] < 80
    assert trial["value"] == pytest.approx(min(curves["val_mse"]))

    # Retrain and export: the .keras file loads in plain Keras (no hpsearch import, safe_mode) and predicts
    # raw rows in target units.
    out = tmp_path / "model"
    retrained = cli("retrain", "r", "--epochs", "5", "--patience", "2", "--out", out, "--quiet")
    assert retrained.code == 0, retrained.err
    card = json.loads((out / "model.json").read_text())
    scaling = card["output"]["target_scaling"]
    assert scaling["mean"] == pytest.approx(float(np.mean(diabetes.y_train)), rel=1e-5)
    assert scaling["std"] == pytest.approx(float(np.std(diabetes.y_train)), rel=1e-5)
    assert card["test_metrics"]["mse"] < variance
    raw_test = np.column_stack([
        column["mean"] + column["std"] * diabetes.x_test[:, i]
        for i, column in enumerate(diabetes.preprocessor.to_dict()["numeric"])
    ]).astype("float32")
    np.save(tmp_path / "x.npy", raw_test)
    code = (
        "import sys, numpy, keras\n"
        "model = keras.models.load_model(sys.argv[1], safe_mode=True)\n"
        "print(float(model.predict(numpy.load(sys.argv[2]), verbose=0).mean()))\n"
        "assert 'search' not in sys.modules and 'spaces' not in sys.modules\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code, str(out / "model.keras"), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert loaded.returncode == 0, loaded.stderr
    predicted_mean = float(loaded.stdout.strip().splitlines()[-1])
    assert abs(predicted_mean - float(np.mean(diabetes.y_test))) < 25  # target mean ~150, std ~77

    # `hpsearch predict` on a CSV of raw rows: the same, in target units.
    import pandas as pd

    names = diabetes.preprocessor.feature_names
    pd.DataFrame(raw_test, columns=names).to_csv(tmp_path / "rows.csv", index=False)
    predicted = cli("predict", out, tmp_path / "rows.csv", "--out", tmp_path / "p.csv")
    assert predicted.code == 0, predicted.err
    predictions = pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy()
    assert predictions.mean() == pytest.approx(predicted_mean, rel=1e-4)
    mse = float(np.mean((predictions - diabetes.y_test) ** 2))
    assert mse == pytest.approx(card["test_metrics"]["mse"], rel=1e-3)


def test_sklearn_folds_standardize_with_their_own_training_rows(cli, tmp_path):
    space = tmp_path / "sgd.yaml"
    space.write_text(SGD_SPACE.replace("objective: val_mse", "objective: val_loss"))
    result = cli("run", space, "--engine", "sklearn", "--cv", "2", "--data", "diabetes", "--study", "s",
                 "--quiet", "--in-process")
    assert result.code == 0, result.err
    [trial] = json.loads(cli("trials", "s", "--json").out)
    assert trial["state"] == "COMPLETE", trial["error"]
    # val_loss on a held-out fold: the standardized MSE, about 0.5 for a fair model (1 = the mean).
    assert 0 < trial["value"] < 1
    assert trial["value"] == pytest.approx(-trial["metrics"]["mean_test_score"])
    for fold in (0, 1):
        curves_mse = trial["curves"][f"split{fold}_mse"]
        curves_loss = trial["curves"][f"split{fold}_loss"]
        assert curves_mse[0] < 6000 and curves_loss[0] < 1.5  # target units vs standardized units

    from hpsearch.data import load_dataset
    from hpsearch.engines.sklearn.cross_validation import cv_rows
    from hpsearch.engines.sklearn.estimators import VALIDATION_SPLIT, make_estimator
    from hpsearch.spaces import load_space, resolve_config

    # The statistics of a fit are its own training rows', less the part Keras holds out for val_ curves.
    x, y = cv_rows(load_dataset("diabetes", seed=0))
    estimator = make_estimator("regression", resolve_config(load_space(str(space)), {}), seed=0)
    estimator.fit(x[:100], y[:100])
    kept = int(np.floor(100 * (1 - VALIDATION_SPLIT)))
    assert estimator.target_mean_ == pytest.approx(float(np.mean(y[:kept])))
    assert estimator.target_std_ == pytest.approx(float(np.std(y[:kept])))
    assert estimator.model_.layers[-1].get_config()["offset"] == pytest.approx(estimator.target_mean_)
