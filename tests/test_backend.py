"""``--backend tensorflow|jax``: the Keras backend is the study's, whatever the user's shell says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import hpsearch_command

#: Two configurations on breast_cancer, long enough to learn (validation accuracy above 0.85).
SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: categorical, choices: [16, 32]}
fixed: {n_hidden: 1, epochs: 3, batch_size: 32, learning_rate: 0.01}
"""

#: Loads the exported model on the backend of its environment and prints its predictions.
PREDICT = r"""
import json, sys
import keras
from sklearn.datasets import load_breast_cancer
model = keras.models.load_model(sys.argv[1], safe_mode=True)
rows = load_breast_cancer().data.astype("float32")
print(json.dumps({"backend": keras.backend.backend(),
                  "predictions": model.predict(rows, verbose=0).ravel().tolist()}))
"""


def _values(cli, study):
    return {trial["params"]["n_neurons"]: trial for trial in json.loads(cli("trials", study, "--json").out)}


@pytest.mark.slow
def test_a_jax_study_trains_on_jax_and_its_exported_model_predicts_the_same_on_tensorflow(
        cli, tmp_path, db_url, monkeypatch):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    common = (space, "--data", "breast_cancer", "--algorithm", "random", "--trials", "2", "--quiet",
              "--pruner", "none")
    # A shell set up for other work on JAX does not move a study that trains on TensorFlow.
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert cli("run", *common, "--study", "tf").code == 0
    dry = cli("run", *common, "--study", "jx", "--backend", "jax", "--dry-run")
    assert "backend jax: models compile with XLA (jit_compile)" in dry.out
    result = cli("run", *common, "--study", "jx", "--backend", "jax")
    assert result.code == 0, result.err

    on_tf, on_jax = _values(cli, "tf"), _values(cli, "jx")
    assert sorted(on_tf) == sorted(on_jax) == [16, 32]  # the same seeded proposals
    for neurons, trial in on_jax.items():
        assert trial["state"] == "COMPLETE"
        assert trial["value"] > 0.85 and on_tf[neurons]["value"] > 0.85
        # Every validation metric, the traced-on-TensorFlow ones included, is scored every epoch.
        assert len(trial["curves"]["val_auc"]) == 3
        # The same seeded model on another backend: another float path, so other curves. Were either
        # study on the other's backend, they would agree to the bit.
        assert trial["curves"]["loss"] != on_tf[neurons]["curves"]["loss"]
    studies = {study["name"]: study for study in json.loads(cli("studies", "--json").out)}
    assert studies["jx"]["settings"]["backend"] == "jax"
    assert studies["jx"]["reproducibility"]["backend"] == "jax"
    assert studies["tf"]["reproducibility"]["backend"] == "tensorflow"
    assert "jax" in studies["jx"]["reproducibility"]["versions"]
    assert "jax" not in studies["tf"]["reproducibility"]["versions"]
    assert "study 'jx' (optuna/random, backend jax)" in cli("best", "jx").out
    assert "study 'tf' (optuna/random)," in cli("best", "tf").out

    refused = cli("resume", "jx", "--backend", "tensorflow")
    assert refused.code == 2
    assert "different --backend (study: jax, given: tensorflow)" in refused.err

    # The best model is retrained on the study's backend; what it exports loads on TensorFlow.
    out = tmp_path / "model"
    env = {**os.environ, "HPSEARCH_STORAGE": db_url, "TF_CPP_MIN_LOG_LEVEL": "2",
           "KERAS_BACKEND": "tensorflow"}
    retrain = subprocess.run(hpsearch_command("retrain", "jx", "--epochs", "3", "--out", out, "--quiet"),
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert retrain.returncode == 0, retrain.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["reproducibility"]["backend"] == "jax"
    predicted = {}
    for backend in ("jax", "tensorflow"):
        done = subprocess.run([sys.executable, "-c", PREDICT, str(out / "model.keras")], check=True,
                              capture_output=True, text=True, env={**env, "KERAS_BACKEND": backend})
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer["backend"] == backend
        predicted[backend] = np.array(answer["predictions"])
    np.testing.assert_allclose(predicted["tensorflow"], predicted["jax"], atol=1e-5)
    assert 0.05 < predicted["tensorflow"].mean() < 0.95  # a model, not a constant


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "torch"], "--backend must be one of tensorflow, jax, but got 'torch'"),
        (["--backend", "jax", "--pack", "4"],
         "--pack 4 needs --backend tensorflow: a pack trains its configurations in one TensorFlow graph"),
        (["--engine", "sklearn", "--backend", "jax"], "--backend does not apply to engine 'sklearn'"),
        (["--engine", "keras-tuner", "--backend", "jax", "--dask", "tcp://127.0.0.1:8786"],
         "--backend jax cannot be combined with --dask"),
    ],
)
def test_backends_a_study_cannot_use_are_one_sentence_and_exit_2(cli, tmp_path, args, message):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    result = cli("run", space, "--data", "iris", "--study", "bad", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_in_process_refuses_a_backend_other_than_the_one_already_loaded(cli, tmp_path):
    import keras

    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    result = cli("run", space, "--data", "iris", "--study", "inproc", "--in-process", "--backend", "jax")
    assert result.code == 2
    assert (f"the study trains on backend jax, but this process already loaded Keras on "
            f"{keras.backend.backend()}; drop --in-process") in result.err
    assert "inproc" not in cli("studies").out  # refused before the study was created
