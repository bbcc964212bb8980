"""``hpsearch retrain`` end to end on CSV data with a categorical column: early stopping, logs, the
database record, and an exported model that plain Keras loads in a fresh process and that agrees with
``hpsearch predict`` and with the trained network."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hpsearch.storage import open_storage

#: Big and fast-learning for 120 training rows: it overfits within a few epochs, so patience 2 stops it.
OVERFITTING_SPACE = """\
objective: val_loss
params:
  learning_rate: {type: float, low: 1.0e-2, high: 3.0e-2, log: true}
fixed:
  n_hidden: 3
  n_neurons: 128
  epochs: 3
  batch_size: 32
"""


def write_mixed_csv(path: Path, rows: int = 200, seed: int = 0, *, label: bool = True) -> Path:
    """Numeric columns, one categorical column and a yes/no label that depends on both."""
    rng = np.random.default_rng(seed)
    lines = ["size,colour,weight" + (",label" if label else "")]
    for _ in range(rows):
        size, weight = rng.normal(), rng.normal()
        colour = rng.choice(["red", "green", "blue"])
        target = "yes" if size + (colour == "red") + 0.3 * rng.normal() > 0.8 else "no"
        lines.append(f"{size:.3f},{colour},{weight:.3f}" + (f",{target}" if label else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def tensorboard_steps(log_dir: Path, tag: str = "epoch_loss") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    return [event.step for event in accumulator.Tensors(tag)]


FRESH_PROCESS = """\
import json, sys
import keras, numpy as np, pandas as pd
frame = pd.read_csv(sys.argv[2])
model = keras.models.load_model(sys.argv[1], safe_mode=True)
outputs = model.predict({name: frame[name].to_numpy() for name in ("size", "colour", "weight")}, verbose=0)
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("search", "spaces", "storage"))
print(json.dumps({"outputs": np.asarray(outputs).reshape(-1).tolist(), "hpsearch_modules": ours}))
"""


@pytest.mark.slow
def test_retrain_stops_early_records_and_exports_a_self_contained_model(cli, tmp_path, db_url):
    data = write_mixed_csv(tmp_path / "data.csv")
    space = tmp_path / "big.yaml"
    space.write_text(OVERFITTING_SPACE)
    assert cli("run", space, "--data", data, "--target", "label", "--trials", "2", "--study", "s",
               "--quiet", "--pruner", "none", "--in-process").code == 0
    best_trial = json.loads(cli("best", "s", "--json").out)["number"]

    result = cli("retrain", "s", "--epochs", "30", "--patience", "2", "--lr-patience", "1", "--quiet")
    assert result.code == 0, result.err
    [directory] = (tmp_path / "models" / "s").iterdir()
    assert directory.name.startswith(f"trial-{best_trial}-")
    assert "stopped early" in result.out

    # The card says what happened; early stopping cut the 30-epoch bound short.
    card = json.loads((directory / "model.json").read_text())
    training = card["training"]
    assert training["stop_reason"] == "early_stopping"
    assert training["epochs_run"] < 30
    assert training["best_epoch"] <= training["epochs_run"] - 2  # patience 2 after the best epoch
    assert training["callbacks"]["monitor"] == "val_loss"
    assert training["callbacks"]["early_stopping"] == {"patience": 2, "restore_best_weights": True}
    assert training["callbacks"]["reduce_lr_on_plateau"] == {"factor": 0.5, "patience": 1}
    assert card["trial"]["number"] == best_trial and card["study"]["name"] == "s"
    assert card["data"]["fingerprint"] == open_storage(db_url).get_study("s").dataset["fingerprint"]
    assert set(card["test_metrics"]) >= {"loss", "accuracy", "auc"}
    assert card["input"]["kind"] == "named"
    assert [i["name"] for i in card["input"]["inputs"]] == ["size", "colour", "weight"]
    assert card["output"]["class_names"] == ["no", "yes"]
    assert {"keras", "tensorflow-cpu", "numpy", "python"} <= set(card["versions"])

    # Every epoch run is in the CSV log and in TensorBoard's event files, for both splits.
    epochs_run = training["epochs_run"]
    with open(directory / "training.csv", newline="") as handle:
        log = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in log] == list(range(epochs_run))
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"} <= set(log[0])
    assert float(log[-1]["learning_rate"]) < float(log[0]["learning_rate"])  # plateau reduced it
    assert tensorboard_steps(directory / "tensorboard" / "train") == list(range(epochs_run))
    assert tensorboard_steps(directory / "tensorboard" / "validation") == list(range(epochs_run))
    assert (directory / "checkpoint.keras").is_file()

    # The database holds the retrain, and `best` shows it.
    model_file = directory / "model.keras"
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    best = json.loads(cli("best", "s", "--json").out)
    [record] = best["models"]
    assert record["trial"] == best_trial and record["path"] == str(model_file) and record["sha256"] == sha
    assert record["test_metrics"] == pytest.approx(card["test_metrics"])
    assert record["epochs_run"] == epochs_run and record["stop_reason"] == "early_stopping"
    assert card["model_sha256"] == sha
    text = cli("best", "s").out
    assert "retrained models" in text and f"test accuracy={card['test_metrics']['accuracy']:.4g}" in text
    assert "early_stopping" in text

    # New raw rows, including a category never seen in training.
    rows = write_mixed_csv(tmp_path / "new.csv", rows=25, seed=7, label=False)
    rows.write_text(rows.read_text().replace(",green,", ",purple,", 1))
    predicted = cli("predict", model_file, rows, "--out", tmp_path / "predictions.csv")
    assert predicted.code == 0, predicted.err
    with open(tmp_path / "predictions.csv", newline="") as handle:
        ours = list(csv.DictReader(handle))
    assert list(ours[0]) == ["prediction", "probability_no", "probability_yes"]
    assert len(ours) == 25 and {row["prediction"] for row in ours} <= {"yes", "no"}
    for row in ours:
        assert row["prediction"] == ("yes" if float(row["probability_yes"]) >= 0.5 else "no")

    # Plain Keras in a fresh process: no hpsearch code, raw rows as a dict of columns.
    fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model_file), str(rows)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    answer = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert answer["hpsearch_modules"] == []
    assert answer["outputs"] == pytest.approx([float(row["probability_yes"]) for row in ours], abs=1e-6)

    # The exported model computes what the trained network computes on preprocessed rows: the
    # best-only checkpoint holds the same (best) epoch that early stopping restored.
    import keras
    import pandas as pd
    from hpsearch.data import Preprocessor

    frame = pd.read_csv(rows)
    network = keras.models.load_model(directory / "checkpoint.keras", safe_mode=True)
    expected = network.predict(Preprocessor.from_dict(card["preprocessing"]).transform(frame), verbose=0)
    assert np.asarray(answer["outputs"]) == pytest.approx(expected.reshape(-1), abs=1e-5)
