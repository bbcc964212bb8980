"""Bundled datasets: tasks, shapes, stratified deterministic splits, class weights, references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hpsearch.data import BUILTIN_DATASETS, Dataset, load_dataset, reload_dataset
from hpsearch.errors import DataError

EXPECTED = {
    # name: (rows, raw features, task, n_classes)
    "digits": (1797, 64, "multiclass", 10),
    "breast_cancer": (569, 30, "binary", 2),
    "iris": (150, 4, "multiclass", 3),
    "wine": (178, 13, "multiclass", 3),
    "diabetes": (442, 10, "regression", 1),
}


def test_builtin_names_are_the_documented_five() -> None:
    assert set(BUILTIN_DATASETS) == set(EXPECTED)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_builtin_loads_with_task_shapes_and_dtypes(name: str) -> None:
    rows, n_raw, task, n_classes = EXPECTED[name]
    data = load_dataset(name)
    assert isinstance(data, Dataset)
    assert (data.task, data.n_classes) == (task, n_classes)
    assert len(data.feature_names) == n_raw == data.n_features
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == rows
    # test_size and val_size are fractions of ALL rows
    assert len(data.y_test) == int(np.ceil(0.2 * rows)) == len(data.y_val)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape == (len(y), n_raw)
        assert np.isfinite(x).all()
        assert y.dtype == (np.float32 if task == "regression" else np.int32)
    # standardized with train statistics: train columns have mean 0
    assert np.allclose(data.x_train.mean(axis=0), 0.0, atol=1e-4)
    if task == "regression":
        assert data.class_names is None
    else:
        assert data.class_names is not None and len(data.class_names) == n_classes
        assert set(np.unique(data.y_train)) == set(range(n_classes))
    ref = data.reference
    assert ref == {"source": name, "kind": "builtin", "target": None, "task": task, "seed": 0,
                   "test_size": 0.2, "val_size": 0.2, "class_weight": None}
    json.dumps(ref)
    assert len(data.fingerprint) == 64


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_builtin_split_is_stratified(name: str) -> None:
    data = load_dataset(name)
    overall = np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]), minlength=data.n_classes)
    overall = overall / overall.sum()
    for y in (data.y_train, data.y_val, data.y_test):
        share = np.bincount(y, minlength=data.n_classes) / len(y)
        # proportional up to rounding one row per class
        assert np.all(np.abs(share - overall) <= 1.5 / len(y) + 1e-9), (share, overall)


def test_iris_class_names_and_summary() -> None:
    data = load_dataset("iris")
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    assert data.summary() == "iris: 150 rows, 4 features, multiclass (3 classes), split 90/30/30"
    diabetes = load_dataset("diabetes").summary()
    assert diabetes == "diabetes: 442 rows, 10 features, regression, split 264/89/89"


def test_same_seed_gives_identical_arrays_and_other_seed_differs() -> None:
    first, second = load_dataset("wine", seed=3), load_dataset("wine", seed=3)
    other = load_dataset("wine", seed=4)
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, attr), getattr(second, attr))
    assert first.fingerprint == second.fingerprint == other.fingerprint  # the data did not change
    assert not np.array_equal(first.x_test, other.x_test)


def test_custom_split_fractions() -> None:
    data = load_dataset("iris", test_size=0.1, val_size=0.3)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (90, 45, 15)


def test_reference_reloads_the_same_dataset() -> None:
    data = load_dataset("breast_cancer", seed=7, class_weight="balanced")
    again = reload_dataset(json.loads(json.dumps(data.reference)))
    assert again.fingerprint == data.fingerprint
    assert np.array_equal(again.x_val, data.x_val) and np.array_equal(again.y_val, data.y_val)
    assert again.class_weight == data.class_weight


def test_class_weight_balanced_uses_train_labels() -> None:
    data = load_dataset("breast_cancer", class_weight="balanced")
    counts = np.bincount(data.y_train)
    assert data.class_weight is not None and set(data.class_weight) == {0, 1}
    for label, weight in data.class_weight.items():
        assert isinstance(label, int) and isinstance(weight, float)
        assert weight == pytest.approx(len(data.y_train) / (2 * counts[label]))
    assert load_dataset("breast_cancer").class_weight is None


def test_class_weight_refused_for_regression_and_unknown_values() -> None:
    with pytest.raises(DataError, match="diabetes: class_weight='balanced' needs a classification task"):
        load_dataset("diabetes", class_weight="balanced")
    with pytest.raises(DataError, match="class_weight must be 'balanced' or None"):
        load_dataset("iris", class_weight="auto")


def test_target_with_builtin_is_refused() -> None:
    with pytest.raises(DataError, match="iris: a builtin dataset has its own target"):
        load_dataset("iris", target="species")


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "mnist" in message and all(name in message for name in BUILTIN_DATASETS)
    assert info.value.exit_code == 2


def test_explicit_task_is_checked_on_builtins() -> None:
    with pytest.raises(DataError, match=r"iris: task 'binary' needs exactly 2 classes in target 'target'.*3"):
        load_dataset("iris", task="binary")
    assert load_dataset("breast_cancer", task="binary").task == "binary"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "classify"}, "task must be one of"),
        ({"test_size": 0.0}, "test_size must be a fraction"),
        ({"val_size": 1.5}, "val_size must be a fraction"),
        ({"test_size": 0.5, "val_size": 0.5}, "must leave rows for training"),
        ({"min_rows_per_class": 0}, "min_rows_per_class must be a positive integer"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset("iris", **kwargs)


def test_min_rows_per_class_names_the_class_and_requirement() -> None:
    with pytest.raises(DataError, match=r"iris: .*'setosa' \(50 rows\).*at least 60 rows"):
        load_dataset("iris", min_rows_per_class=60)
