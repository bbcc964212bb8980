"""The exported model without a search: preprocessing inside the file equals the trained network on
preprocessed rows, saves are atomic, and ``predict`` refuses a model and card that do not match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hpsearch.data import load_dataset
from hpsearch.results.export import (
    CARD_FORMAT,
    CARD_VERSION,
    build_serving_model,
    export_model,
    input_format,
    model_inputs,
    output_format,
    predict_file,
)

from tests.test_retrain_cli import write_mixed_csv


def _network(dataset):
    from hpsearch.spaces import TaskInfo, build_model
    from hpsearch.training.fit import seed_everything

    seed_everything(3)
    task = TaskInfo(kind=dataset.task, n_features=dataset.n_features, n_classes=dataset.n_classes)
    return build_model({"n_hidden": 2, "n_neurons": 8, "batch_norm": True, "dropout": 0.2}, task)


def _card(dataset) -> dict:
    preprocessing = dataset.preprocessor.to_dict()
    return {"format": CARD_FORMAT, "version": CARD_VERSION, "preprocessing": preprocessing,
            "input": input_format(preprocessing), "output": output_format(dataset.task, dataset.class_names)}


def _raw_csv_rows(tmp_path: Path):
    import pandas as pd

    rows = write_mixed_csv(tmp_path / "rows.csv", rows=12, seed=5, label=False)
    frame = pd.read_csv(rows)
    frame.loc[0, "colour"] = "purple"  # unseen category: all-zero block
    frame.loc[1, "colour"] = None  # missing category
    frame.loc[2, "size"] = None  # missing number: the train mean
    frame.to_csv(rows, index=False)
    return rows, pd.read_csv(rows, dtype={"colour": str})


def test_csv_model_with_categories_predicts_like_the_network(tmp_path):
    import keras

    data = write_mixed_csv(tmp_path / "data.csv")
    dataset = load_dataset(str(data), target="label")
    network = _network(dataset)
    _, frame = _raw_csv_rows(tmp_path)
    card = _card(dataset)

    expected = network.predict(dataset.preprocessor.transform(frame), verbose=0)
    serving = build_serving_model(network, card["preprocessing"])
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in serving.layers)
    got = serving.predict(model_inputs(card, frame, "rows.csv"), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    card_path, _sha = export_model(network, card["preprocessing"], tmp_path / "out" / "model.keras", card)
    loaded = keras.models.load_model(tmp_path / "out" / "model.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(model_inputs(card, frame, "rows.csv"), verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    assert json.loads(card_path.read_text())["model_file"] == "model.keras"


def test_array_model_scales_inside(tmp_path):
    import keras

    dataset = load_dataset("iris")
    network = _network(dataset)
    card = _card(dataset)
    raw = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)
    export_model(network, card["preprocessing"], tmp_path / "model.keras", card)
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert card["input"]["kind"] == "array" and card["input"]["shape"] == [None, 4]
    np.testing.assert_allclose(loaded.predict(raw, verbose=0),
                               network.predict(dataset.preprocessor.transform(raw), verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_failed_save_leaves_the_previous_model_intact(tmp_path, monkeypatch):
    import keras

    dataset = load_dataset("iris")
    network = _network(dataset)
    card = _card(dataset)
    target = tmp_path / "model.keras"
    export_model(network, card["preprocessing"], target, card)
    good_model, good_card = target.read_bytes(), (tmp_path / "model.json").read_bytes()

    def crash_mid_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")  # a partial file, then the crash
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.Model, "save", crash_mid_save)
    with pytest.raises(OSError, match="No space left"):
        export_model(network, card["preprocessing"], target, card)
    assert target.read_bytes() == good_model
    assert (tmp_path / "model.json").read_bytes() == good_card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.keras"]  # no temp files
    monkeypatch.undo()
    assert keras.models.load_model(target, safe_mode=True) is not None


def test_predict_handles_missing_values_and_refuses_mismatched_files(cli, tmp_path):
    data = write_mixed_csv(tmp_path / "data.csv")
    dataset = load_dataset(str(data), target="label")
    network = _network(dataset)
    card = _card(dataset)
    export_model(network, card["preprocessing"], tmp_path / "m" / "model.keras", card)
    rows, frame = _raw_csv_rows(tmp_path)

    predictions, _ = predict_file(tmp_path / "m", rows)
    expected = network.predict(dataset.preprocessor.transform(frame), verbose=0).reshape(-1)
    np.testing.assert_allclose(predictions["probability_yes"], expected, rtol=1e-5, atol=1e-6)
    printed = cli("predict", tmp_path / "m" / "model.keras", rows)
    assert printed.code == 0, printed.err
    assert printed.out.splitlines()[0] == "prediction,probability_no,probability_yes"
    assert len(printed.out.splitlines()) == 13

    missing = tmp_path / "missing.csv"
    missing.write_text("size,weight\n1.0,2.0\n")
    result = cli("predict", tmp_path / "m", missing)
    assert result.code == 2 and "'colour'" in result.err and "Traceback" not in result.err

    card_file = tmp_path / "m" / "model.json"
    changed = json.loads(card_file.read_text())
    changed["model_sha256"] = "0" * 64
    card_file.write_text(json.dumps(changed))
    result = cli("predict", tmp_path / "m", rows)
    assert result.code == 2 and "does not match its card" in result.err

    result = cli("predict", tmp_path / "nowhere.keras", rows)
    assert result.code == 2 and "no such model file" in result.err


@pytest.mark.parametrize("removed", ["preprocessing.feature_names", "output.class_names", "output"])
def test_predict_refuses_a_card_with_missing_keys(cli, tmp_path, removed):
    data = write_mixed_csv(tmp_path / "data.csv")
    dataset = load_dataset(str(data), target="label")
    card = _card(dataset)
    export_model(_network(dataset), card["preprocessing"], tmp_path / "m" / "model.keras", card)
    rows, _ = _raw_csv_rows(tmp_path)
    card_file = tmp_path / "m" / "model.json"
    edited = json.loads(card_file.read_text())
    section, _, key = removed.partition(".")
    del (edited[section] if key else edited)[key or section]
    card_file.write_text(json.dumps(edited))
    result = cli("predict", tmp_path / "m", rows)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    missing = removed if key else "'output' section"
    assert "model.json" in lines[0] and (f"missing {removed!r}" in lines[0] or missing in lines[0])
