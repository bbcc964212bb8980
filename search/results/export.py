"""Exported models: a self-contained ``.keras`` file, its model card, and predictions from both.

The exported file carries its preprocessing as ordinary Keras layers placed in front of the trained
network, so ``keras.models.load_model(path, safe_mode=True)`` followed by ``predict`` on raw feature rows
works without hpsearch installed:

- data with numbered columns (bundled datasets, ``.npz``): one input ``features`` taking a float32
  array of shape ``(rows, n_columns)``; a ``Normalization`` layer holds the train split's mean and
  variance;
- CSV data: one named input per feature column (a dict of 1-D arrays); a numeric column goes through a
  ``Normalization`` layer, a categorical one through ``StringLookup(output_mode="one_hot")`` holding the
  train split's categories, whose out-of-vocabulary slot is cropped off so an unseen category encodes as
  all zeros, exactly as :class:`hpsearch.data.Preprocessor` does.

No ``Lambda`` layer is used (``safe_mode`` refuses them). The trained network is cloned and its weights
copied in unchanged, so the exported model's predictions on raw rows equal the trained network's on
preprocessed rows.

The model card (``model.json`` beside ``model.keras``) records where the model came from and how to
feed it; it holds the model file's sha256, so ``predict`` refuses a model and card that do not belong
together. Both files are written atomically: to a temporary file in the same directory, then
``os.replace``, so a crash mid-save leaves the previous good file in place. Written files (model, card,
predictions) get mode 0666 less the umask, like any file the user makes. Reading a card back checks every
field ``predict`` reads (:mod:`hpsearch.results.model_card`).

Keras and pandas are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, HpsearchError, UsageError
from ..names import file_name_for
from .model_card import (
    CARD_FORMAT as CARD_FORMAT,  # defined with the card reader; still found here
)
from .model_card import CARD_VERSION as CARD_VERSION
from .model_card import REEXPORT, ExportError, read_card

if TYPE_CHECKING:
    import keras
    import pandas as pd

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
#: What ``predict --out DIR`` writes inside DIR.
PREDICTIONS_FILE = "predictions.csv"
#: The name of the single input of models trained on numbered (array) data.
ARRAY_INPUT = "features"
#: StringLookup's own default OOV token could be a real category; this one is unlikely to be.
OOV_TOKEN = "__hpsearch_unseen__"


# -- the serving model ----------------------------------------------------------------------------------
def input_names(preprocessing: Mapping[str, Any]) -> dict[str, str]:
    """Column name -> Keras input name for CSV (``frame``) data.

    Keras refuses ``/`` in names and needs them unique; everything else of the column name is kept, so
    for most files the input name is the column name.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in preprocessing["feature_names"]:
        base = column.replace("/", "_") or "column"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        names[column] = name
    return names


def build_serving_model(network: keras.Model, preprocessing: Mapping[str, Any]) -> keras.Model:
    """Put the preprocessing described by ``Preprocessor.to_dict()`` in front of a clone of ``network``."""
    import keras

    # Rebuilt from its config rather than `clone_model`, which compiles the clone like the original: the
    # file then holds no optimizer state and no metric, so plain Keras loads it without hpsearch's own
    # metric classes (hpsearch.spaces.metrics).
    clone = keras.Model.from_config(network.get_config())
    clone.set_weights(network.get_weights())
    numeric = {item["name"]: item for item in preprocessing["numeric"]}
    categorical = {item["name"]: item for item in preprocessing["categorical"]}

    if preprocessing["input_kind"] == "array":
        if categorical:
            raise ExportError("array data with categorical columns cannot be exported")
        columns = preprocessing["feature_names"]
        raw = keras.Input((len(columns),), name=ARRAY_INPUT, dtype="float32")
        scaled = keras.layers.Normalization(
            axis=-1,
            mean=[numeric[c]["mean"] for c in columns],
            variance=[numeric[c]["std"] ** 2 for c in columns],
            name="hp_scale",
        )(raw)
        return keras.Model(raw, clone(scaled), name="hpsearch_model")

    names = input_names(preprocessing)
    inputs: dict[str, Any] = {}
    pieces = []
    for position, column in enumerate(preprocessing["feature_names"]):
        name = names[column]
        if column in numeric:
            item = numeric[column]
            inputs[name] = keras.Input((1,), name=name, dtype="float32")
            pieces.append(keras.layers.Normalization(
                axis=-1, mean=[item["mean"]], variance=[item["std"] ** 2], name=f"hp_scale_{position}",
            )(inputs[name]))
        else:
            categories = list(categorical[column]["categories"])
            inputs[name] = keras.Input((1,), name=name, dtype="string")
            one_hot = keras.layers.StringLookup(
                vocabulary=categories, num_oov_indices=1, oov_token=OOV_TOKEN, output_mode="one_hot",
                name=f"hp_one_hot_{position}",
            )(inputs[name])
            # Slot 0 is the OOV slot: crop it so an unseen category is all zeros, as in training.
            width = len(categories)
            as_steps = keras.layers.Reshape((width + 1, 1), name=f"hp_steps_{position}")(one_hot)
            cropped = keras.layers.Cropping1D((1, 0), name=f"hp_drop_unseen_{position}")(as_steps)
            pieces.append(keras.layers.Reshape((width,), name=f"hp_flat_{position}")(cropped))
    features = pieces[0] if len(pieces) == 1 else keras.layers.Concatenate(name="hp_features")(pieces)
    return keras.Model(inputs, clone(features), name="hpsearch_model")


def input_format(preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """How to feed the exported model, for the card (and for ``predict``)."""
    numeric = {item["name"]: item for item in preprocessing["numeric"]}
    missing = preprocessing.get("missing_category")
    if preprocessing["input_kind"] == "array":
        columns = list(preprocessing["feature_names"])
        return {
            "kind": "array",
            "name": ARRAY_INPUT,
            "shape": [None, len(columns)],
            "dtype": "float32",
            "columns": columns,
            "description": (
                f"model.predict(x) with x a float32 array of shape (rows, {len(columns)}) holding the raw "
                "(unscaled) feature values, columns in the order of 'columns'; scaling is inside the "
                "model. Values must be finite: fill a missing value with its column's train mean "
                "(preprocessing.numeric[].mean)."
            ),
        }
    names = input_names(preprocessing)
    inputs = []
    for column in preprocessing["feature_names"]:
        if column in numeric and numeric[column].get("date"):
            inputs.append({"name": names[column], "column": column, "type": "date", "dtype": "float32",
                           "unit": "days since 1970-01-01 UTC (an ISO date's time of day as a fraction)",
                           "missing": f"fill with the train mean {numeric[column]['mean']!r}"})
        elif column in numeric:
            inputs.append({"name": names[column], "column": column, "type": "numeric", "dtype": "float32",
                           "missing": f"fill with the train mean {numeric[column]['mean']!r}"})
        else:
            categories = next(c["categories"] for c in preprocessing["categorical"] if c["name"] == column)
            inputs.append({"name": names[column], "column": column, "type": "categorical", "dtype": "string",
                           "categories": list(categories),
                           "missing": f"pass the string {missing!r}",
                           "unseen": "a category not listed encodes as all zeros"})
    return {
        "kind": "named",
        "inputs": inputs,
        "description": (
            "model.predict({name: values, ...}) with one 1-D array per input, keyed by input name (the "
            "CSV column name, '/' replaced by '_'): raw numbers (float32) for numeric inputs, strings for "
            "categorical ones, days since 1970-01-01 for date inputs (hpsearch predict converts ISO "
            "dates itself); for a pandas DataFrame: {i['name']: frame[i['column']].to_numpy() ...}. "
            "Scaling and one-hot encoding are inside the model. Numbers must be finite."
        ),
    }


def output_format(
    task: str,
    class_names: list[str] | None,
    threshold: float = 0.5,
    target_scale: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The card's ``output``; a binary model predicts its second class at ``probability >= threshold``;
    a regression model's ``target_scale`` (train mean, std) is the fixed layer its output ends with."""
    if task == "binary":
        assert class_names is not None
        return {"task": task, "shape": [None, 1], "class_names": class_names, "threshold": threshold,
                "description": f"probability of class {class_names[1]!r}; predict {class_names[1]!r} when "
                               f">= {threshold:.6g}, else {class_names[0]!r}"}
    if task == "multiclass":
        assert class_names is not None
        return {"task": task, "shape": [None, len(class_names)], "class_names": class_names,
                "description": "probability of each class, in the order of class_names; predict the argmax"}
    output: dict[str, Any] = {"task": task, "shape": [None, 1], "class_names": None,
                              "description": "the predicted target value, in the target's own units"}
    if target_scale is not None:
        mean, std = target_scale
        output["target_scaling"] = {
            "mean": mean, "std": std, "fitted_on": "train split",
            "description": "the network learns (target - mean) / std; its last layer (Rescaling, fixed) "
                           "returns mean + std * that, so predictions are in the target's units",
        }
    return output


# -- atomic writes --------------------------------------------------------------------------------------
def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # some platforms cannot open a directory; the rename is still atomic there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], *, suffix: str) -> None:
    """Call ``write(temporary_path)`` then move the result onto ``path`` in one ``os.replace``.

    The temporary file lives in ``path``'s directory (a rename across file systems is not atomic) and
    ends with ``suffix`` (Keras insists on ``.keras``). Whatever ``write`` raises, the temporary file is
    removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_temporary(path, suffix)
    try:
        write(temporary)
        _fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_path(path.parent, directory=True)


def _new_temporary(path: Path, suffix: str) -> Path:
    """An empty new file beside ``path``, created with mode 0666 less the umask.

    Not ``tempfile.mkstemp``: its files are 0600, and ``os.replace`` keeps the mode, so every exported
    model, card and predictions file would be unreadable to the user's group (docs/concepts.md, file
    modes).
    """
    for _ in range(100):
        temporary = path.parent / f".{path.stem[:50]}-{secrets.token_hex(6)}.tmp{suffix}"
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


def write_json_atomic(path: Path, data: Any) -> None:
    from .queries import json_safe

    text = json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), suffix=".json")


def save_model_atomic(model: keras.Model, path: Path) -> None:
    atomic_write(path, lambda temporary: model.save(temporary), suffix=".keras")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path_for(model_path: Path) -> Path:
    if model_path.name == MODEL_FILE:
        return model_path.with_name(CARD_FILE)
    return model_path.with_suffix(".json")


def export_model(
    network: keras.Model, preprocessing: Mapping[str, Any], model_path: Path, card: dict[str, Any]
) -> tuple[Path, str]:
    """Write the serving model and then its card (both atomically); return the card path and sha256.

    The model goes first: if the process dies between the two writes, the old card's sha256 no longer
    matches and ``predict`` says so instead of silently mixing a new model with an old description.
    """
    serving = build_serving_model(network, preprocessing)
    save_model_atomic(serving, model_path)
    sha = sha256_of(model_path)
    card_path = card_path_for(model_path)
    write_json_atomic(card_path, {**card, "model_file": model_path.name, "model_sha256": sha})
    return card_path, sha


# -- reading back and predicting ------------------------------------------------------------------------
def resolve_model_path(given: str | os.PathLike[str]) -> Path:
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise UsageError(f"{given}: no such model file (give a .keras file written by `hpsearch retrain` or "
                         "its directory)")
    if path.suffix != ".keras":
        raise UsageError(f"{given}: only .keras model files are loaded, but got "
                         f"{path.suffix or 'no suffix'!r}")
    return path


def load_card(model_path: Path, *, check_sha: bool = True) -> dict[str, Any]:
    """The checked card of ``model_path`` (see :func:`hpsearch.results.model_card.read_card`).

    Args:
        model_path: the ``.keras`` file; its card is ``model.json`` (or ``NAME.json``) beside it.
        check_sha: also refuse a card whose ``model_sha256`` is not the model file's.

    Returns:
        The card, every field ``predict`` reads checked.

    Raises:
        ExportError: the card is missing, unreadable, malformed, or (``check_sha``) for another file.
    """
    card_path = card_path_for(model_path)
    if not card_path.is_file():
        raise ExportError(f"{model_path}: its model card {card_path.name} is missing; predict needs both "
                          "files as `hpsearch retrain` wrote them")
    card = read_card(card_path)
    if check_sha and card.get("model_sha256") != sha256_of(model_path):
        raise ExportError(f"{model_path} does not match its card {card_path.name} (sha256 differs): the "
                          "files come from different exports or one was changed; use a matching pair")
    return card


def model_inputs(card: Mapping[str, Any], frame: pd.DataFrame, where: str) -> Any:
    """Raw CSV rows -> what the exported model's ``predict`` takes, as the card describes it.

    Missing values are filled the way training filled them (numeric: train mean; categorical: the
    missing category), which the model itself cannot do from a string or NaN.
    """
    import pandas as pd

    preprocessing = card["preprocessing"]
    missing = [c for c in preprocessing["feature_names"] if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: feature column {missing[0]!r} is missing; the model needs columns "
                        f"{', '.join(map(repr, preprocessing['feature_names']))}")
    numeric = {item["name"]: item for item in preprocessing["numeric"]}
    missing_category = preprocessing.get("missing_category", "__missing__")

    def number_column(column: str) -> np.ndarray:
        if numeric[column].get("date"):
            # A date column is fed as days since 1970-01-01, the number it was trained on.
            from ..data.preprocessing import date_days

            days = date_days(frame[column].to_numpy(dtype=object), where, column)
            return np.where(np.isnan(days), numeric[column]["mean"], days).astype(np.float32)
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            raise DataError(f"{where}: numeric column {column!r} holds a non-numeric value "
                            f"{frame[column][bad].iloc[0]!r}")
        filled = values.fillna(numeric[column]["mean"]).to_numpy(dtype=np.float32)
        if not np.isfinite(filled).all():
            raise DataError(f"{where}: numeric column {column!r} holds infinite values")
        return filled

    if preprocessing["input_kind"] == "array":
        return np.stack([number_column(c) for c in preprocessing["feature_names"]], axis=1)
    names = input_names(preprocessing)
    inputs: dict[str, np.ndarray] = {}
    for column in preprocessing["feature_names"]:
        if column in numeric:
            inputs[names[column]] = number_column(column)
        else:
            values = frame[column]
            inputs[names[column]] = np.array(
                [missing_category if pd.isna(v) else str(v) for v in values], dtype=object
            )
    return inputs


def predictions_frame(card: Mapping[str, Any], outputs: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    output = card["output"]
    task = output["task"]
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "regression":
        return pd.DataFrame({"prediction": outputs.reshape(-1)})
    classes = list(output["class_names"])
    if task == "binary":
        positive = outputs.reshape(-1)
        probabilities = np.stack([1.0 - positive, positive], axis=1)
        # The threshold `retrain --threshold-for` chose on validation; cards without one predict at 0.5.
        chosen = (positive >= float(output.get("threshold", 0.5))).astype(int)
    else:
        probabilities = outputs
        chosen = probabilities.argmax(axis=1)
    labels = [classes[i] for i in chosen]
    columns: dict[str, Any] = {"prediction": labels}
    for index, name in enumerate(classes):
        columns[f"probability_{name}"] = probabilities[:, index]
    return pd.DataFrame(columns)


def read_rows(path: str | os.PathLike[str], card: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"{path}: file not found")
    # Categorical columns are read as text, exactly as written, so '01' stays the category '01'.
    categorical = {item["name"]: str for item in card["preprocessing"]["categorical"]}
    try:
        return pd.read_csv(source, dtype=categorical or None)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: cannot be read as CSV ({str(error).strip().splitlines()[0]})") from None


def load_exported(model_path: Path) -> keras.Model:
    import keras

    try:
        return keras.models.load_model(model_path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - a broken or foreign file is an input problem
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{model_path}: cannot be loaded as a Keras model ({first})") from None


def predict_file(
    model: str | os.PathLike[str], data: str | os.PathLike[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for the rows of the CSV ``data`` using only the exported model and its card."""
    model_path = resolve_model_path(model)
    card = load_card(model_path)
    frame = read_rows(data, card)
    if len(frame) == 0:
        raise DataError(f"{data}: the file has a header but no data rows")
    return predict_rows(load_exported(model_path), model_path, card, frame, str(data)), card


def predict_rows(
    model: keras.Model, model_path: Path, card: Mapping[str, Any], frame: pd.DataFrame, where: str
) -> pd.DataFrame:
    """Predictions for the raw feature rows ``frame`` with an exported model, as ``hpsearch predict``
    writes them (label and per-class probabilities, or the predicted value).

    Args:
        model: the exported serving model, loaded.
        model_path: its ``.keras`` file (named in errors).
        card: its checked model card.
        frame: rows holding the card's feature columns (other columns are ignored).
        where: what the rows are called in an error (a file name).

    Returns:
        One prediction row per row of ``frame``.

    Raises:
        DataError: a feature column is missing or holds values of the wrong kind.
        ExportError: the card does not describe the model's inputs or outputs.
        HpsearchError: the model produced non-finite predictions.
    """
    inputs = model_inputs(card, frame, where)
    try:
        outputs = model.predict(inputs, verbose=0, batch_size=1024)
    except (ValueError, KeyError, TypeError) as error:
        # The rows were converted as the card says; a model that takes other inputs means a card edited
        # by hand (its sha256 still names the model), not bad data.
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ExportError(f"{card_path_for(model_path)}: the model card's 'preprocessing' does not describe "
                          f"the inputs of {model_path.name} ({first}); {REEXPORT}") from None
    _check_output_width(card, np.asarray(outputs), card_path_for(model_path))
    predictions = predictions_frame(card, outputs)
    if not np.isfinite(predictions.select_dtypes("number").to_numpy()).all():
        raise HpsearchError(f"{model_path}: the model produced non-finite predictions for {where}")
    return predictions


def _check_output_width(card: Mapping[str, Any], outputs: np.ndarray, card_path: Path) -> None:
    """A card whose class names do not fit the model's output (a hand-edited card keeps the model's
    sha256) is refused, rather than labelling rows with the wrong classes or failing on an index."""
    output = card["output"]
    width = 1 if outputs.ndim < 2 else outputs.shape[1]
    expected = len(output["class_names"]) if output["task"] == "multiclass" else 1
    if width != expected:
        raise ExportError(f"{card_path}: the model card's 'output' describes {expected} output column(s) "
                          f"for a {output['task']} task, but the model gives {width}; {REEXPORT}")


def predictions_path(path: str | os.PathLike[str]) -> Path:
    """Where ``predict --out PATH`` writes: PATH, or ``PATH/predictions.csv`` when PATH is a directory
    (or ends with a path separator, for a directory not made yet).

    Args:
        path: the ``--out`` value.

    Returns:
        The CSV file to write.
    """
    target = Path(path).expanduser()
    text = os.fspath(path)
    if target.is_dir() or text.endswith((os.sep, "/")):
        return target / PREDICTIONS_FILE
    return target


def write_predictions(predictions: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the predictions CSV atomically (a half-written file never replaces an earlier one).

    Args:
        predictions: the frame :func:`predict_file` returned.
        path: a CSV file, or a directory to hold ``predictions.csv`` (see :func:`predictions_path`).

    Returns:
        The file written (mode 0666 less the umask, as files the user makes).
    """
    target = predictions_path(path)
    atomic_write(target, lambda temporary: predictions.to_csv(temporary, index=False), suffix=".csv")
    return target


def format_metrics(metrics: Mapping[str, Any], digits: int = 4) -> str:
    def shown(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
        return str(value)

    return ", ".join(f"{name}={shown(value)}" for name, value in metrics.items())


def safe_directory_name(text: str) -> str:
    """A study name as one path component (a study may be named 'a/b'), at most 100 bytes long (see
    :func:`hpsearch.names.file_name_for`)."""
    return file_name_for(text)
