"""Fuzzing the model card reader: whatever a ``model.json`` holds, reading it gives a card ``predict`` can
use or one clear error, never an unexpected exception.

Inputs: arbitrary JSON-ish values (nested lists and objects, huge integers, NaN and infinities, strings),
valid cards with one field replaced or removed, and raw text or bytes. Derandomized, so a run is
repeatable; no TensorFlow: a card that reads is fed to the row conversion and the output labelling with a
made-up frame and made-up model outputs.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hpsearch.errors import DataError
from hpsearch.results.model_card import CARD_FORMAT, ExportError, read_card
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

#: Inputs each property tried, and how many of them read as usable cards (reported by the last test).
TRIED: dict[str, int] = {}
VALID: dict[str, int] = {}
#: One xdist worker runs the file in order (``make test`` uses ``--dist loadgroup``), so the last test
#: sees the counts of the others.
pytestmark = pytest.mark.xdist_group("fuzz-model-card")
MAX_MESSAGE = 400

ARRAY_CARD = {
    "format": CARD_FORMAT, "version": 1, "model_sha256": "0" * 64,
    "preprocessing": {"version": 1, "input_kind": "array", "feature_names": ["a", "b"],
                      "numeric": [{"name": "a", "mean": 0.5, "std": 1.0},
                                  {"name": "b", "mean": -2.0, "std": 3.0}],
                      "categorical": [], "missing_category": "__missing__", "output_columns": 2},
    "output": {"task": "multiclass", "shape": [None, 3], "class_names": ["x", "y", "z"]},
}
FRAME_CARD = {
    "format": CARD_FORMAT, "version": 1, "model_sha256": "0" * 64,
    "preprocessing": {"version": 1, "input_kind": "frame", "feature_names": ["size", "colour/shade"],
                      "numeric": [{"name": "size", "mean": 1.0, "std": 2.0}],
                      "categorical": [{"name": "colour/shade", "categories": ["red", "blue"]}],
                      "missing_category": "__missing__", "output_columns": 3},
    "output": {"task": "binary", "shape": [None, 1], "class_names": ["no", "yes"], "threshold": 0.3},
}

leaves = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
    | st.sampled_from(["array", "frame", "binary", "multiclass", "regression", CARD_FORMAT, "a", "size"])
)
json_values = st.recursive(
    leaves,
    lambda children: (st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts and lists (the root is the empty path)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_cards(draw: st.DrawFn) -> Any:
    """A valid card with one value replaced by anything, or one key removed."""
    card = copy.deepcopy(draw(st.sampled_from([ARRAY_CARD, FRAME_CARD])))
    path = draw(st.sampled_from(_paths(card)))
    if not path:
        return draw(json_values)
    holder = card
    for step in path[:-1]:
        holder = holder[step]
    if isinstance(holder, dict) and draw(st.booleans()):
        del holder[path[-1]]
    else:
        holder[path[-1]] = draw(json_values)
    return card


def _as_text(value: Any) -> str:
    # json.dumps writes NaN/Infinity, which json.loads (and so the reader) accepts back.
    return json.dumps(value)


def _check(card_path: Path, kind: str) -> None:
    """The property: a usable card, or one ExportError of one bounded line with exit code 2."""
    TRIED[kind] = TRIED.get(kind, 0) + 1
    try:
        card = read_card(card_path)
    except ExportError as error:
        message = str(error)
        assert error.exit_code == 2
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith(str(card_path)), message
        assert len(message) <= MAX_MESSAGE + len(str(card_path)), message
        return
    VALID[kind] = VALID.get(kind, 0) + 1
    _use(card)


def _use(card: dict[str, Any]) -> None:
    """What ``predict`` does with a card after the model: convert rows, label outputs."""
    import pandas as pd
    from hpsearch.results.export import model_inputs, predictions_frame

    preprocessing = card["preprocessing"]
    categorical = {item["name"]: item["categories"] for item in preprocessing["categorical"]}
    columns = {}
    for name in preprocessing["feature_names"]:
        is_category = preprocessing["input_kind"] == "frame" and name in categorical and not any(
            item["name"] == name for item in preprocessing["numeric"])
        columns[name] = [(categorical[name] or ["q"])[0], None] if is_category else [1.5, None]
    frame = pd.DataFrame(columns)
    try:
        model_inputs(card, frame, "rows.csv")
    except DataError as error:
        assert "\n" not in str(error)
    output = card["output"]
    width = len(output["class_names"]) if output["task"] == "multiclass" else 1
    outputs = np.full((2, width), 1.0 / width)
    labelled = predictions_frame(card, outputs)
    assert len(labelled) == 2
    if output["task"] == "binary":
        assert math.isfinite(float(output.get("threshold", 0.5)))


SETTINGS = settings(derandomize=True, max_examples=600, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def card_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "model.json"


@SETTINGS
@given(value=json_values)
@example(value=ARRAY_CARD)
@example(value=FRAME_CARD)
@example(value={**ARRAY_CARD, "version": "1"})
@example(value={**ARRAY_CARD, "version": float("nan")})
@example(value={**ARRAY_CARD, "version": 10**30})
@example(value={**FRAME_CARD, "output": {**FRAME_CARD["output"], "threshold": float("inf")}})
def test_any_json_value_reads_as_a_card_or_one_clear_error(card_file: Path, value: Any) -> None:
    card_file.write_text(_as_text(value), encoding="utf-8")
    _check(card_file, "json values")


@SETTINGS
@given(card=mutated_cards())
def test_a_card_with_one_field_changed_reads_or_names_it(card_file: Path, card: Any) -> None:
    card_file.write_text(_as_text(card), encoding="utf-8")
    _check(card_file, "one field changed")


@settings(derandomize=True, max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(raw=b"[" * 100_000)  # nested deeper than the JSON parser recurses
@example(raw=b"1" * 5000)  # an integer longer than Python parses by default
@example(raw=b'{"format": "hpsearch-model-card", "version": 1e999}')
@example(raw=b"\xff\xfe{}")
@example(raw=b"")
def test_raw_bytes_read_as_a_card_or_one_clear_error(card_file: Path, raw: bytes) -> None:
    card_file.write_bytes(raw)
    _check(card_file, "raw bytes")


def test_the_fuzzing_tried_enough_inputs() -> None:
    """Runs last in this file: how many inputs the properties above tried (``pytest -s`` shows it)."""
    if len(TRIED) < 3:
        pytest.skip("counts only when the three properties above ran in this process")
    counts = [f"{kind}: {TRIED[kind]} inputs, {VALID.get(kind, 0)} usable cards" for kind in TRIED]
    print("model card fuzzing: " + "; ".join(counts))
    assert sum(TRIED.values()) >= 1000
    assert VALID.get("json values", 0) >= 1 and VALID.get("one field changed", 0) >= 1
