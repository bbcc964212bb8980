"""Per-row sample weights from a CSV column: not a feature, checked on load, passed to every fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hpsearch.data import load_dataset
from hpsearch.errors import DataError

#: One configuration; Adam, so doubling every weight doubles the training loss and leaves the updates
#: (and so the validation curves and scores) as they were.
ONE_CONFIG = """\
objective: val_loss
params:
  n_neurons: {type: categorical, choices: [8]}
fixed: {n_hidden: 1, epochs: 3, batch_size: 32, optimizer: adam, learning_rate: 0.01}
"""


def _write_csv(path, weight: str | None = "w", rows: int = 240) -> None:
    """Columns a, b, [w,] y; w is ``weight`` in every row, or 1 + 2 * y when ``weight`` is "w"."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    y = (a + 0.5 * b > 0).astype(int)
    if weight is None:
        lines = ["a,b,y", *(f"{a[i]:.6f},{b[i]:.6f},{y[i]}" for i in range(rows))]
    else:
        lines = ["a,b,w,y", *(f"{a[i]:.6f},{b[i]:.6f},{weight if weight != 'w' else 1 + 2 * y[i]},{y[i]}"
                              for i in range(rows))]
    path.write_text("\n".join(lines) + "\n")


def test_the_weight_column_is_not_a_feature_and_follows_its_rows(tmp_path):
    path = tmp_path / "data.csv"
    _write_csv(path)
    dataset = load_dataset(str(path), target="y", sample_weight="w")
    assert dataset.feature_names == ["a", "b"] and dataset.n_features == 2
    for weights, labels in ((dataset.w_train, dataset.y_train), (dataset.w_val, dataset.y_val),
                            (dataset.w_test, dataset.y_test)):
        np.testing.assert_array_equal(weights, 1 + 2 * labels)
    assert dataset.reference["sample_weight"] == "w"
    assert load_dataset(str(path), target="y").w_train is None


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("nope", None, "sample_weight column 'nope' not found"),
        ("y", None, "is the target column"),
        ("w", "-1", "must hold finite numbers >= 0"),
        ("w", "", "column 'w' is empty in every row"),
        ("w", "0", "is zero in every row"),
        ("w", "heavy", "must hold numbers"),
    ],
)
def test_bad_weight_columns_are_refused_naming_the_column(tmp_path, column, value, message):
    path = tmp_path / "data.csv"
    _write_csv(path, weight=value if value is not None else "w")
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), target="y", sample_weight=column)


def test_weights_need_csv_data(cli):
    result = cli("run", "--data", "iris", "--sample-weight", "w", "--dry-run")
    assert result.code == 2
    assert "only CSV data has per-row weights" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("engine", ["optuna", "sklearn"])
def test_doubled_weights_double_the_training_loss_and_leave_the_scores(cli, tmp_path, engine):
    plain_csv, doubled_csv = tmp_path / "plain.csv", tmp_path / "doubled.csv"
    _write_csv(plain_csv, weight=None)
    _write_csv(doubled_csv, weight="2")  # the same rows, with a weight of 2 each
    space = tmp_path / "one.yaml"
    space.write_text(ONE_CONFIG)
    extra = ["--cv", "2"] if engine == "sklearn" else ["--pruner", "none"]
    common = ("run", space, "--engine", engine, "--target", "y", "--trials", "1", "--quiet", "--in-process",
              *extra)
    assert cli(*common, "--data", plain_csv, "--study", "plain").code == 0
    result = cli(*common, "--data", doubled_csv, "--sample-weight", "w", "--study", "weighted")
    assert result.code == 0, result.err
    plain = json.loads(cli("trials", "plain", "--json").out)[0]
    weighted = json.loads(cli("trials", "weighted", "--json").out)[0]
    names = [name for name in plain["curves"] if name.endswith("loss") and "val_" not in name]
    assert names
    for name in names:
        assert weighted["curves"][name] == pytest.approx([2 * v for v in plain["curves"][name]], rel=1e-3)
    assert weighted["value"] == pytest.approx(plain["value"], rel=1e-3)
