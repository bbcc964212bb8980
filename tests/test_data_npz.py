"""NPZ sources: arrays X and y, the happy paths and every DataError."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hpsearch.data import load_dataset
from hpsearch.errors import DataError


def save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def sample(n: int = 40, features: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, features))


def test_npz_multiclass(tmp_path: Path) -> None:
    path = save(tmp_path / "data.npz", X=sample(), y=np.arange(40) % 3)
    data = load_dataset(str(path))
    assert (data.task, data.n_classes, data.class_names) == ("multiclass", 3, ["0", "1", "2"])
    assert data.feature_names == ["x0", "x1", "x2"] and data.n_features == 3
    assert data.reference["kind"] == "npz" and data.reference["source"] == str(path.resolve())
    assert data.reference["target"] is None
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert np.allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert data.summary() == "data.npz: 40 rows, 3 features, multiclass (3 classes), split 24/8/8"
    # an array-input preprocessor takes raw rows as an array
    raw = np.load(path)["X"]
    assert data.preprocessor.transform(raw).shape == (40, 3)


def test_npz_string_labels_and_regression(tmp_path: Path) -> None:
    labels = np.array(["spam", "ham"] * 20)
    data = load_dataset(str(save(tmp_path / "text.npz", X=sample(), y=labels)))
    assert (data.task, data.class_names) == ("binary", ["ham", "spam"])
    reg = load_dataset(str(save(tmp_path / "reg.npz", X=sample(), y=np.linspace(0, 1, 40))))
    assert reg.task == "regression" and reg.y_train.dtype == np.float32 and reg.n_classes == 1


def test_npz_missing_features_become_train_mean(tmp_path: Path) -> None:
    x = sample()
    x[::4, 1] = np.nan
    data = load_dataset(str(save(tmp_path / "holes.npz", X=x, y=np.arange(40) % 2)))
    assert np.isfinite(data.x_train).all()
    assert data.preprocessor.transform(np.array([[0.0, np.nan, 0.0]]))[0, 1] == 0.0


def test_npz_fingerprint_follows_bytes(tmp_path: Path) -> None:
    path = save(tmp_path / "a.npz", X=sample(), y=np.arange(40) % 2)
    copy = tmp_path / "b.npz"
    shutil.copy(path, copy)
    assert load_dataset(str(path)).fingerprint == load_dataset(str(copy)).fingerprint
    x = sample()
    x[0, 0] += 1
    save(copy, X=x, y=np.arange(40) % 2)
    assert load_dataset(str(path)).fingerprint != load_dataset(str(copy)).fingerprint


Y2 = np.arange(40) % 2

NPZ_ERRORS = [
    ({"y": Y2}, r"bad\.npz: array 'X' is missing; the archive holds 'y', but needs 'X' and 'y'"),
    ({"X": sample()}, r"bad\.npz: array 'y' is missing"),
    ({"X": np.arange(40.0), "y": Y2}, r"bad\.npz: array 'X' must be 2-D .*shape \(40,\)"),
    ({"X": np.full((40, 2), "a"), "y": Y2}, r"bad\.npz: array 'X' must be numeric"),
    ({"X": sample().astype(object), "y": Y2}, r"bad\.npz: array 'X' holds Python objects"),
    ({"X": sample(), "y": Y2[:39]}, r"bad\.npz: arrays 'X' and 'y' must have the same number of rows, but X "
                                     r"has 40 and y has 39"),
    ({"X": sample(), "y": np.zeros((40, 2))}, r"bad\.npz: array 'y' must be 1-D"),
    ({"X": sample(), "y": np.full(40, np.nan)}, r"bad\.npz: array 'y' is missing \(NaN\) in every row"),
    ({"X": sample(), "y": Y2, "X_val": sample(10)}, r"bad\.npz: array 'X_val' needs its pair 'y_val'"),
    ({"X": sample(), "y": Y2, "X_test": sample(10)[:, :2], "y_test": Y2[:10]},
     r"bad\.npz: array 'X_test' has 2 columns, but 'X' has 3"),
    ({"X": sample(8), "y": Y2[:8]}, r"bad\.npz: 8 rows are too few .*at least 10 are needed"),
    ({"X": sample(), "y": np.zeros(40)}, r"bad\.npz: target 'y' has only one class \('0'\); classification "
                                         r"needs at least 2 classes"),
]


@pytest.mark.parametrize(("arrays", "match"), NPZ_ERRORS)
def test_npz_errors(tmp_path: Path, arrays: dict, match: str) -> None:
    path = save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_dataset(str(path))


def test_npz_all_nan_feature_column(tmp_path: Path) -> None:
    x = sample()
    x[:, 2] = np.nan
    with pytest.raises(DataError, match=r"nan\.npz: column 'x2' of array 'X' is missing \(NaN\) in every"):
        load_dataset(str(save(tmp_path / "nan.npz", X=x, y=np.arange(40) % 2)))


def test_npz_refuses_target_and_garbage(tmp_path: Path) -> None:
    path = save(tmp_path / "data.npz", X=sample(), y=np.arange(40) % 2)
    with pytest.raises(DataError, match=r"data\.npz: an \.npz file has its target in array 'y'"):
        load_dataset(str(path), target="label")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"garbage\.npz: cannot be read as an \.npz archive"):
        load_dataset(str(garbage))
    with pytest.raises(DataError, match=r"gone\.npz: file not found"):
        load_dataset(str(tmp_path / "gone.npz"))


def test_npz_transform_checks_width(tmp_path: Path) -> None:
    data = load_dataset(str(save(tmp_path / "data.npz", X=sample(), y=np.arange(40) % 2)))
    with pytest.raises(DataError, match="2-D array with 3 columns"):
        data.preprocessor.transform(np.zeros((2, 4)))


def test_npz_text_target_cannot_be_regression(tmp_path: Path) -> None:
    path = save(tmp_path / "text.npz", X=sample(), y=np.array(["low", "high"] * 20))
    with pytest.raises(DataError, match=r"text\.npz: target 'y' must be numeric for regression, but holds "
                                        r"values such as 'low'"):
        load_dataset(str(path), task="regression")


def test_npz_given_splits_and_unlabelled_rows(tmp_path: Path) -> None:
    y = np.arange(40) % 2
    y_test = np.where(np.arange(12) < 2, np.nan, np.arange(12) % 2)
    path = save(tmp_path / "split.npz", X=sample(), y=y, X_test=sample(12), y_test=y_test)
    data = load_dataset(str(path))
    # The test rows are the archive's own (10 with a label); validation is taken from X's 40 rows.
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (32, 8, 10)
    assert data.notes == [f"{path}: left out 2 rows of 'X_test' whose target 'y_test' is missing (NaN); "
                          "10 rows remain"]
    assert load_dataset(str(path)).fingerprint == data.fingerprint
    both = save(tmp_path / "both.npz", X=sample(), y=y, X_val=sample(6), y_val=y[:6], X_test=sample(7),
                y_test=y[:7])
    assert [len(part) for part in (load_dataset(str(both)).y_train, load_dataset(str(both)).y_val,
                                   load_dataset(str(both)).y_test)] == [40, 6, 7]
