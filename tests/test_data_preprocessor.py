"""Preprocessor serialization and the lazy-import promise of hpsearch.data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hpsearch.data import MISSING_CATEGORY, Preprocessor, load_dataset
from hpsearch.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_preprocessor_round_trip() -> None:
    data = load_dataset("wine")
    spec = data.preprocessor.to_dict()
    assert spec["input_kind"] == "array" and spec["categorical"] == []
    assert [c["name"] for c in spec["numeric"]] == data.feature_names == spec["output_columns"]
    rebuilt = Preprocessor.from_dict(json.loads(json.dumps(spec)))
    assert rebuilt == data.preprocessor and rebuilt.to_dict() == spec
    raw = np.random.default_rng(0).normal(size=(5, 13))
    assert np.array_equal(rebuilt.transform(raw), data.preprocessor.transform(raw))


def test_mixed_round_trip_keeps_column_order_and_categories(tmp_path: Path) -> None:
    n = 40
    frame = pd.DataFrame({
        "city": (["paris", "rome", None, "oslo"] * 10)[:n],
        "size": np.arange(n, dtype=float),
        "kind": ["a", "b"] * 20,
        "y": [0, 1, 1, 0] * 10,
    })
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), target="y")
    spec = data.preprocessor.to_dict()
    assert spec["input_kind"] == "frame" and spec["feature_names"] == ["city", "size", "kind"]
    assert spec["missing_category"] == MISSING_CATEGORY
    city = spec["categorical"][0]["categories"]
    assert city == sorted(city) and MISSING_CATEGORY in city
    assert spec["output_columns"] == [f"city={c}" for c in city] + ["size", "kind=a", "kind=b"]
    rebuilt = Preprocessor.from_dict(json.loads(json.dumps(spec)))
    rows = pd.read_csv(path).drop(columns=["y"])
    assert np.array_equal(rebuilt.transform(rows), data.preprocessor.transform(rows))
    # raw rows as an array in feature order work too
    assert np.array_equal(rebuilt.transform(rows.to_numpy(dtype=object)), rebuilt.transform(rows))


def test_from_dict_refuses_a_broken_description() -> None:
    spec = load_dataset("iris").preprocessor.to_dict()
    with pytest.raises(DataError, match="invalid preprocessor description"):
        Preprocessor.from_dict({k: v for k, v in spec.items() if k != "numeric"})
    with pytest.raises(DataError, match="output_columns do not match"):
        Preprocessor.from_dict({**spec, "output_columns": ["a"]})


def test_importing_search_data_stays_light() -> None:
    code = (
        "import sys, hpsearch.data\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
