"""Reading a model card (``model.json``) back, checking every field ``hpsearch predict`` reads.

A card is a JSON file a user may open, edit, truncate or replace. Whatever it holds, reading it ends in
either a card whose fields ``predict`` can use as they are, or one :class:`ExportError` (exit code 2): one
line naming the card file, the key and what must hold, with the value shown cut short. ``predict`` never
meets a ``KeyError`` or ``TypeError`` from a card.

Only the fields ``predict`` reads are checked; the others (``study``, ``training``, ``test_metrics``, ...)
describe the model for people and may be anything JSON holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

CARD_FORMAT = "hpsearch-model-card"
CARD_VERSION = 1
TASKS = ("binary", "multiclass", "regression")
INPUT_KINDS = ("array", "frame")
#: The longest value shown in an error message, so the message stays one short line.
_SHOWN = 40
REEXPORT = "re-export the model with `hpsearch retrain`"


class ExportError(InputError):
    """A model or card cannot be read, or they do not belong together."""


def _shown(value: Any) -> str:
    """A value for a message: its JSON type and a short repr (one line: repr escapes newlines)."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= _SHOWN else text[:_SHOWN] + '...'}"


class _Card:
    """The checks of one card file; each failure names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, what: str, value: Any) -> ExportError:
        return ExportError(f"{self.path}: the model card's {key!r} must be {what}, but got {_shown(value)}; "
                           f"{REEXPORT}")

    def section(self, holder: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        if key not in holder:
            raise ExportError(f"{self.path}: the model card has no {where!r} section; {REEXPORT}")
        value = holder[key]
        if not isinstance(value, dict):
            raise self.fail(where, "an object", value)
        return value

    def need(self, holder: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in holder:
            raise ExportError(f"{self.path}: the model card is missing {where!r}; {REEXPORT}")
        return holder[key]

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "a string", value)
        return value

    def number(self, value: Any, where: str, low: float | None = None, high: float | None = None) -> float:
        # bool is an int to Python but never a number in a card; json gives inf for 1e999.
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and (low is None or value >= low) and (high is None or value <= high):
            return float(value)
        bounds = "" if low is None else f" from {low:g} to {high:g}"
        raise self.fail(where, f"a finite number{bounds}", value)

    def strings(self, value: Any, where: str, *, count: int | None = None, least: int = 0) -> list[str]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            if (count is None or len(value) == count) and len(value) >= least:
                return value
        size = f"{count} " if count is not None else (f"at least {least} " if least else "")
        raise self.fail(where, f"a list of {size}strings", value)

    def items(self, value: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise self.fail(where, "a list of objects", value)
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{where}[{index}]", "an object", item)
        return value


def check_card(card: Any, card_path: Path) -> dict[str, Any]:
    """Check a parsed card: the format, the version and every field ``predict`` reads.

    Args:
        card: what ``json.loads`` returned for the card file.
        card_path: the card file, named in every message.

    Returns:
        The card, unchanged.

    Raises:
        ExportError: the first field that is missing or does not hold what ``predict`` needs.
    """
    check = _Card(card_path)
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ExportError(f"{card_path}: not an hpsearch model card (no format {CARD_FORMAT!r})")
    version = card.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise check.fail("version", "a whole number", version)
    if version > CARD_VERSION:
        raise ExportError(f"{card_path}: model card version {version} is newer than this hpsearch reads "
                          f"({CARD_VERSION}); upgrade hpsearch")
    check.text(check.need(card, "model_sha256", "model_sha256"), "model_sha256")

    preprocessing = check.section(card, "preprocessing", "preprocessing")
    kind = check.need(preprocessing, "input_kind", "preprocessing.input_kind")
    if kind not in INPUT_KINDS:
        raise check.fail("preprocessing.input_kind", f"one of {', '.join(map(repr, INPUT_KINDS))}", kind)
    features = check.strings(check.need(preprocessing, "feature_names", "preprocessing.feature_names"),
                             "preprocessing.feature_names", least=1)
    numeric = check.items(check.need(preprocessing, "numeric", "preprocessing.numeric"),
                          "preprocessing.numeric")
    categorical = check.items(check.need(preprocessing, "categorical", "preprocessing.categorical"),
                              "preprocessing.categorical")
    for index, item in enumerate(numeric):
        where = f"preprocessing.numeric[{index}]"
        check.text(check.need(item, "name", f"{where}.name"), f"{where}.name")
        check.number(check.need(item, "mean", f"{where}.mean"), f"{where}.mean")
    for index, item in enumerate(categorical):
        where = f"preprocessing.categorical[{index}]"
        check.text(check.need(item, "name", f"{where}.name"), f"{where}.name")
        check.strings(check.need(item, "categories", f"{where}.categories"), f"{where}.categories")
    if "missing_category" in preprocessing:
        check.text(preprocessing["missing_category"], "preprocessing.missing_category")
    # Every feature needs its recipe: array data is numbers only, CSV data numbers or categories.
    known = {item["name"] for item in numeric} | (
        set() if kind == "array" else {item["name"] for item in categorical})
    for feature in features:
        if feature not in known:
            allowed = "preprocessing.numeric" if kind == "array" else "preprocessing.numeric or .categorical"
            raise ExportError(f"{card_path}: the model card's feature {feature[:_SHOWN]!r} must be described "
                              f"in {allowed}, but is not; {REEXPORT}")

    output = check.section(card, "output", "output")
    task = check.need(output, "task", "output.task")
    if task not in TASKS:
        raise check.fail("output.task", f"one of {', '.join(map(repr, TASKS))}", task)
    if task != "regression":
        names = check.need(output, "class_names", "output.class_names")
        check.strings(names, "output.class_names", count=2 if task == "binary" else None,
                      least=0 if task == "binary" else 2)
    if task == "binary" and "threshold" in output:
        check.number(output["threshold"], "output.threshold", 0.0, 1.0)
    return card


def read_card(card_path: Path) -> dict[str, Any]:
    """Read and check the card file ``card_path`` (see :func:`check_card`); no model file is needed.

    Args:
        card_path: the ``model.json`` (or ``NAME.json``) file.

    Returns:
        The checked card.

    Raises:
        ExportError: the file cannot be read, is not UTF-8 JSON (or nests too deeply, or holds a number
            too long to parse), or fails :func:`check_card`.
    """
    try:
        text = card_path.read_text(encoding="utf-8")
        card = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        # ValueError: bad JSON, and integers longer than Python's digit limit.
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ExportError(f"{card_path}: cannot be read as a model card ({first})") from None
    except RecursionError:
        raise ExportError(f"{card_path}: cannot be read as a model card (JSON nested too deeply)") from None
    return check_card(card, card_path)
