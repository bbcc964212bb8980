"""CSV sources: preprocessing fitted on train only, task inference, fingerprints and every DataError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hpsearch.data import MISSING_CATEGORY, Preprocessor, load_dataset
from hpsearch.errors import DataError


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def mixed_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "constant": np.full(n, 3.0),
        "color": rng.choice(["red", "green", "blue"], n),
        "label": np.where(np.arange(n) % 2 == 0, "yes", "no"),
    })
    frame.loc[[1, 5, 9, 20, 33], "age"] = np.nan
    frame.loc[[2, 4, 6, 8, 10, 12], "color"] = np.nan
    return frame


@pytest.fixture
def mixed_csv(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = mixed_frame()
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path, pd.read_csv(path)


def test_mixed_csv_widths_and_train_only_fit(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, frame = mixed_csv
    data = load_dataset(str(path), target="label")
    assert data.task == "binary" and data.class_names == ["no", "yes"] and data.n_classes == 2
    assert data.feature_names == ["age", "constant", "color"]
    spec = data.preprocessor.to_dict()
    categories = spec["categorical"][0]["categories"]
    assert set(categories) <= {"blue", "green", "red", MISSING_CATEGORY}
    assert data.n_features == 2 + len(categories)
    assert spec["output_columns"] == ["age", "constant"] + [f"color={c}" for c in categories]
    assert data.x_train.dtype == np.float32 and data.x_train.shape[1] == data.n_features

    # numeric columns standardized with TRAIN statistics: train mean 0 and std 1 (constant stays 0)
    assert data.x_train[:, 0].mean() == pytest.approx(0.0, abs=1e-5)
    assert np.all(data.x_train[:, 1] == 0.0)
    # one-hot blocks: exactly one 1 per row for categories seen in train
    assert np.all(data.x_train[:, 2:].sum(axis=1) == 1.0)

    # the fitted mean is the mean of the train rows only, not of all rows
    transformed_all = data.preprocessor.transform(frame)
    train_rows = {row.tobytes() for row in data.x_train}
    in_train = np.array([row.tobytes() in train_rows for row in transformed_all])
    train_age = frame["age"][in_train]
    assert spec["numeric"][0]["mean"] == pytest.approx(train_age.mean())
    assert spec["numeric"][0]["mean"] != pytest.approx(frame["age"].mean(), abs=1e-9)
    assert spec["numeric"][1] == {"name": "constant", "mean": 3.0, "std": 1.0}  # std 0 -> 1


def test_missing_values_and_unseen_category(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, _ = mixed_csv
    data = load_dataset(str(path), target="label")
    rows = pd.DataFrame({"age": [np.nan, 50.0], "constant": [3.0, 3.0], "color": [np.nan, "purple"],
                         "extra": [1, 2]})
    out = data.preprocessor.transform(rows)
    assert out.shape == (2, data.n_features) and out.dtype == np.float32
    assert out[0, 0] == 0.0  # missing numeric -> train mean -> 0 after scaling
    categories = data.preprocessor.to_dict()["categorical"][0]["categories"]
    if MISSING_CATEGORY in categories:
        assert out[0, 2 + categories.index(MISSING_CATEGORY)] == 1.0
    assert np.all(out[1, 2:] == 0.0)  # unseen category -> all-zero block


def test_transform_names_a_missing_feature_column(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, frame = mixed_csv
    data = load_dataset(str(path), target="label")
    with pytest.raises(DataError, match="lack feature column 'color'"):
        data.preprocessor.transform(frame.drop(columns=["color"]))


def test_csv_is_deterministic_and_reference_is_absolute(mixed_csv: tuple[Path, pd.DataFrame],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = mixed_csv
    monkeypatch.chdir(path.parent)
    first = load_dataset("data.csv", target="label", seed=5)
    second = load_dataset(str(path), target="label", seed=5)
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)
    assert first.reference["source"] == str(path.resolve())
    assert first.reference["kind"] == "csv" and first.reference["target"] == "label"
    assert first.reference["task"] == "binary"
    json.dumps(first.reference)
    width = first.n_features
    expected = f"data.csv: 60 rows, 3 features ({width} after encoding), binary (2 classes), split 36/12/12"
    assert first.summary() == expected


def test_fingerprint_follows_content_not_path(tmp_path: Path, mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, _ = mixed_csv
    copy = tmp_path / "elsewhere" / "moved.csv"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    original = load_dataset(str(path), target="label")
    assert load_dataset(str(copy), target="label").fingerprint == original.fingerprint
    lines = copy.read_text().splitlines()
    lines[3] = lines[3].replace("yes", "no") if "yes" in lines[3] else lines[3].replace("no", "yes")
    copy.write_text("\n".join(lines) + "\n")
    assert load_dataset(str(copy), target="label").fingerprint != original.fingerprint
    # the target name is part of what was fingerprinted
    two = frame_csv(tmp_path, [0.5, 1.5] * 10, "two.csv")
    by_x = load_dataset(str(two), target="x", task="regression")
    assert by_x.fingerprint != load_dataset(str(two), target="target").fingerprint


def test_preprocessor_round_trip_gives_identical_transform(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, frame = mixed_csv
    data = load_dataset(str(path), target="label")
    rebuilt = Preprocessor.from_dict(json.loads(json.dumps(data.preprocessor.to_dict())))
    assert rebuilt == data.preprocessor
    assert np.array_equal(rebuilt.transform(frame), data.preprocessor.transform(frame))


# -- task inference --------------------------------------------------------------------------------------


def frame_csv(tmp_path: Path, target: list, name: str = "t.csv") -> Path:
    n = len(target)
    path = tmp_path / name
    pd.DataFrame({"x": np.arange(n, dtype=float), "target": target}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("target", "task", "n_classes", "names"),
    [
        ([0.5, 1.25, 2.0, 3.5] * 10, "regression", 1, None),
        (["cat", "dog"] * 20, "binary", 2, ["cat", "dog"]),
        (["b", "a", "c", "a"] * 10, "multiclass", 3, ["a", "b", "c"]),
        ([3, 1, 2, 1] * 10, "multiclass", 3, ["1", "2", "3"]),
        (list(range(40)), "regression", 1, None),
        ([True, False] * 20, "binary", 2, ["False", "True"]),
        ([0.0, 1.0] * 20, "binary", 2, ["0", "1"]),
        ([5, 7] * 20, "binary", 2, ["5", "7"]),
    ],
)
def test_task_inference(tmp_path: Path, target: list, task: str, n_classes: int, names: list | None) -> None:
    data = load_dataset(str(frame_csv(tmp_path, target)), target="target")
    assert (data.task, data.n_classes, data.class_names) == (task, n_classes, names)
    if task == "regression":
        assert data.y_train.dtype == np.float32
    else:
        assert data.y_train.dtype == np.int32
        assert set(np.concatenate([data.y_train, data.y_val, data.y_test])) == set(range(n_classes))


def test_twenty_integer_values_are_classes(tmp_path: Path) -> None:
    data = load_dataset(str(frame_csv(tmp_path, list(range(20)) * 5)), target="target")
    assert data.task == "multiclass" and data.n_classes == 20


def test_encoded_labels_follow_class_names(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, ["b", "a", "c", "a"] * 10)
    data = load_dataset(str(path), target="target")
    frame = pd.read_csv(path)
    x_all = data.preprocessor.transform(frame)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        for row, label in zip(x, y, strict=True):
            original = frame["target"][np.flatnonzero((x_all == row).all(axis=1))[0]]
            assert data.class_names[label] == original


def test_explicit_tasks(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, [3, 1, 2, 1] * 10)
    assert load_dataset(str(path), target="target", task="regression").task == "regression"
    assert load_dataset(str(path), target="target", task="multiclass").n_classes == 3
    with pytest.raises(DataError, match=r"t\.csv: task 'binary' needs exactly 2 classes in target column "
                                        r"'target', but found 3: '1', '2', '3'"):
        load_dataset(str(path), target="target", task="binary")
    text = frame_csv(tmp_path, ["cat", "dog"] * 20, "text.csv")
    with pytest.raises(DataError, match=r"text\.csv: target column 'target' must be numeric for regression"):
        load_dataset(str(text), target="target", task="regression")


# -- errors ----------------------------------------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.csv: file not found"):
        load_dataset(str(tmp_path / "nothere.csv"), target="y")


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_dataset(str(write_csv(tmp_path / "empty.csv", "")), target="y")
    with pytest.raises(DataError, match=r"header\.csv: the file has a header but no data rows"):
        load_dataset(str(write_csv(tmp_path / "header.csv", "a,b,y\n")), target="y")


def test_csv_needs_a_target(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match=r"data\.csv: a CSV file needs target=<column>"):
        load_dataset(str(mixed_csv[0]))


def test_target_column_missing_lists_columns(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match=r"data\.csv: target column 'species' not found; available columns: "
                                        r"'age', 'constant', 'color', 'label'"):
        load_dataset(str(mixed_csv[0]), target="species")


def test_no_feature_columns_left(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "only.csv", "y\n" + "\n".join(["0", "1"] * 10) + "\n")
    with pytest.raises(DataError, match=r"only\.csv: no feature columns left after taking 'y' as the target"):
        load_dataset(str(path), target="y")


def test_one_class_only(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, ["a"] * 30, "one.csv")
    with pytest.raises(DataError, match=r"one\.csv: target column 'target' has only one class \('a'\); "
                                        r"classification needs at least 2 classes"):
        load_dataset(str(path), target="target")


def test_class_with_too_few_rows(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, ["a", "b"] * 12 + ["c", "c", "c"], "small.csv")
    with pytest.raises(DataError, match=r"small\.csv: in target column 'target', class 'c' \(3 rows\) has "
                                        r"fewer than 5 rows; each class needs at least 5 rows"):
        load_dataset(str(path), target="target", min_rows_per_class=5)
    assert load_dataset(str(path), target="target", min_rows_per_class=3).n_classes == 3
    single = frame_csv(tmp_path, ["a", "b"] * 12 + ["c"], "single.csv")
    with pytest.raises(DataError, match=r"class 'c' \(1 row\) has fewer than 2 rows"):
        load_dataset(str(single), target="target")


def test_rare_class_keeps_a_training_row(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, ["a", "b"] * 20 + ["c", "c"], "rare.csv")
    for seed in range(20):
        data = load_dataset(str(path), target="target", seed=seed)
        assert 2 in data.y_train


def test_too_few_rows_says_how_many(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, [0.5, 1.5, 2.5] * 3, "tiny.csv")
    with pytest.raises(DataError, match=r"tiny\.csv: 9 rows are too few .*at least 10 are needed"):
        load_dataset(str(path), target="target")
    ten = frame_csv(tmp_path, [0.5, 1.5] * 5, "ten.csv")
    assert len(load_dataset(str(ten), target="target").y_train) == 6
    many = frame_csv(tmp_path, [f"c{i}" for i in range(8)] * 2, "many.csv")
    with pytest.raises(DataError, match=r"many\.csv: 16 rows are too few .* with 8 classes; at least \d+"):
        load_dataset(str(many), target="target", test_size=0.4, val_size=0.4)


def test_rows_without_a_target_are_left_out_with_a_note(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "holes.csv", "x,y\n" + "".join(f"{i},{'' if i % 7 == 0 else i % 2}\n"
                                                             for i in range(30)))
    dataset = load_dataset(str(path), target="y")
    assert dataset.n_rows == 25
    assert dataset.notes == [f"{path}: left out 5 rows whose target 'y' is missing; 25 rows remain"]
    assert load_dataset(str(path), target="x").notes == [], "a complete target leaves every row in"
    blank = write_csv(tmp_path / "blank.csv", "x,y\n" + "".join(f"{i},\n" for i in range(30)))
    with pytest.raises(DataError, match=r"blank\.csv: target column 'y' is missing in every row"):
        load_dataset(str(blank), target="y")


def test_entirely_empty_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "blank.csv", "x,notes,y\n" + "".join(f"{i},,{i % 2}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"blank\.csv: column 'notes' is empty in every row"):
        load_dataset(str(path), target="y")


def test_free_text_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({"name": [f"person {i}" for i in range(80)], "x": range(80), "y": [0, 1] * 40}).to_csv(
        path, index=False)
    with pytest.raises(DataError, match=r"data\.csv: column 'name' looks like free text or an id "
                                        r"\(80 distinct values\); leave it out with --drop name "
                                        r"\(drop=\['name'\] in Python\) or encode it"):
        load_dataset(str(path), target="y")


def test_non_numeric_numeric_value_at_transform(mixed_csv: tuple[Path, pd.DataFrame]) -> None:
    path, frame = mixed_csv
    data = load_dataset(str(path), target="label")
    bad = frame.astype({"age": object})
    bad.loc[0, "age"] = "old"
    with pytest.raises(DataError, match="numeric column 'age' holds a non-numeric value 'old'"):
        data.preprocessor.transform(bad)


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.txt", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"data\.txt: unsupported file type '\.txt'"):
        load_dataset(str(path), target="b")


def test_class_weight_on_csv(tmp_path: Path) -> None:
    path = frame_csv(tmp_path, ["a"] * 30 + ["b"] * 10, "imbalanced.csv")
    data = load_dataset(str(path), target="target", class_weight="balanced")
    assert data.class_weight is not None
    assert data.class_weight[1] > 1.0 > data.class_weight[0]
