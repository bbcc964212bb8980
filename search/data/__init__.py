"""Datasets for a search: load a bundled dataset, a CSV or an NPZ, check it, split it and preprocess it.

``load_dataset`` is the one entry point. It refuses unusable data before any training with a
``DataError`` that names the file and the column and says what must hold. The returned ``Dataset``
carries train/validation/test arrays ready for Keras, a JSON-able ``reference`` to reload the same data,
a ``fingerprint`` of the raw content (so a resume can tell whether the data changed), and the fitted
``Preprocessor`` whose ``to_dict()`` lets the export step rebuild the same transform as Keras layers.

pandas and scikit-learn are imported inside the functions that need them: the CLI's query commands import
this module and must not pay for them. TensorFlow/Keras are never imported here.
"""

from __future__ import annotations

import hashlib
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list

from ..errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BUILTIN_DATASETS",
    "BUNDLED_CSVS",
    "TASKS",
    "MIN_ROWS",
    "MISSING_CATEGORY",
    "Dataset",
    "Preprocessor",
    "load_dataset",
    "reload_dataset",
]

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "iris", "wine", "diabetes")
#: CSV files shipped in ``search/datasets/``, by name, with their target column. ``imbalanced``: breast
#: cancer with malignant cut to 10% of the rows (``scripts/make_imbalanced_csv.py`` regenerates it).
BUNDLED_CSVS: dict[str, str] = {"imbalanced": "diagnosis"}
TASKS: tuple[str, ...] = ("auto", "binary", "multiclass", "regression")

# Fewer rows than this cannot give a meaningful train/validation/test split.
MIN_ROWS = 10
# An integer target with more distinct values than this is more likely a count or a measure than labels.
MAX_INTEGER_CLASSES = 20
# A text column with more distinct values than this (and distinct in over half its rows) is an id or free
# text: one-hot encoding it would make a huge, useless input layer.
MAX_CATEGORIES = 50
# Missing categorical values become their own category, so "unknown" can carry signal.
MISSING_CATEGORY = "__missing__"

_BUILTIN_TASKS = {
    "digits": "multiclass",
    "breast_cancer": "binary",
    "iris": "multiclass",
    "wine": "multiclass",
    "diabetes": "regression",
}

_NUMERIC = "numeric"
_CATEGORICAL = "categorical"


# --------------------------------------------------------------------------------------------------------
# Preprocessing


@dataclass(frozen=True)
class _NumericColumn:
    name: str
    mean: float
    std: float


@dataclass(frozen=True)
class _CategoricalColumn:
    name: str
    categories: tuple[str, ...]


class Preprocessor:
    """Standardizes numeric columns and one-hot encodes categorical ones, as fitted on the train split.

    Contract: ``transform`` takes RAW rows (a DataFrame with the raw feature columns, or a 2-D array whose
    columns are ``feature_names`` in order) and returns float32 of width ``n_features``. Missing numeric
    values become the train mean (0 after scaling); missing categorical values map to ``MISSING_CATEGORY``
    and categories unseen in train map to an all-zero block. ``to_dict``/``from_dict`` round-trip exactly
    through JSON, so the export step can build the same transform from Keras layers.
    """

    def __init__(self, columns: Sequence[_NumericColumn | _CategoricalColumn], *, input_kind: str = "array"):
        if input_kind not in ("array", "frame"):
            raise ValueError(f"input_kind must be 'array' or 'frame', got {quoted(input_kind)}")
        self._columns = tuple(columns)
        self.input_kind = input_kind

    # -- fitting ------------------------------------------------------------------------------------------

    @classmethod
    def _fit(
        cls, columns: Mapping[str, np.ndarray], kinds: Mapping[str, str], *, input_kind: str
    ) -> Preprocessor:
        """Fit on train columns: float64 arrays for numeric columns, category-key arrays for the others."""
        fitted: list[_NumericColumn | _CategoricalColumn] = []
        for name, values in columns.items():
            if kinds[name] == _NUMERIC:
                present = values[~np.isnan(values)]
                # A column can be present overall but missing in every train row; 0/1 keeps it harmless.
                mean = float(present.mean()) if present.size else 0.0
                std = float(present.std()) if present.size else 1.0
                fitted.append(_NumericColumn(name, mean, std if std > 0 else 1.0))
            else:
                fitted.append(_CategoricalColumn(name, tuple(sorted(set(values.tolist())))))
        return cls(fitted, input_kind=input_kind)

    # -- description --------------------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """The raw input columns, in the order ``transform`` expects for arrays."""
        return [column.name for column in self._columns]

    @property
    def output_columns(self) -> list[str]:
        """Names of the transformed columns: ``name`` for numeric, ``name=category`` for one-hot."""
        names: list[str] = []
        for column in self._columns:
            if isinstance(column, _NumericColumn):
                names.append(column.name)
            else:
                names.extend(f"{column.name}={category}" for category in column.categories)
        return names

    @property
    def n_features(self) -> int:
        return len(self.output_columns)

    @property
    def has_categorical(self) -> bool:
        return any(isinstance(column, _CategoricalColumn) for column in self._columns)

    # -- transform ----------------------------------------------------------------------------------------

    def transform(self, data: pd.DataFrame | np.ndarray | Sequence[Sequence[Any]]) -> np.ndarray:
        """Transform raw rows into the model's float32 input matrix."""
        return self._transform_columns(self._raw_columns(data))

    def _raw_columns(self, data: Any) -> dict[str, np.ndarray]:
        pandas = sys.modules.get("pandas")  # a DataFrame can only exist if pandas is already imported
        if pandas is not None and isinstance(data, pandas.DataFrame):
            missing = [name for name in self.feature_names if name not in data.columns]
            if missing:
                raise DataError(
                    f"the rows to transform lack feature column {quoted(missing[0])}; expected columns: "
                    f"{quoted_list(self.feature_names)}"
                )
            return {
                column.name: _frame_numeric(data[column.name], column.name, "the rows to transform")
                if isinstance(column, _NumericColumn)
                else _category_keys(data[column.name].to_numpy(dtype=object))
                for column in self._columns
            }
        array = np.asarray(data, dtype=None if self.has_categorical else np.float64)
        if array.ndim != 2 or array.shape[1] != len(self._columns):
            raise DataError(
                f"the rows to transform must be a 2-D array with {len(self._columns)} columns "
                f"({quoted_list(self.feature_names)}), but got shape {array.shape}"
            )
        raw: dict[str, np.ndarray] = {}
        for position, column in enumerate(self._columns):
            values = array[:, position]
            if isinstance(column, _NumericColumn):
                try:
                    raw[column.name] = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError):
                    raise DataError(
                        f"the rows to transform hold non-numeric values in numeric column {column.name!r}"
                    ) from None
            else:
                raw[column.name] = _category_keys(np.asarray(values, dtype=object))
        return raw

    def _transform_columns(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        n_rows = len(next(iter(raw.values()))) if raw else 0
        out = np.zeros((n_rows, self.n_features), dtype=np.float64)
        position = 0
        for column in self._columns:
            values = raw[column.name]
            if isinstance(column, _NumericColumn):
                filled = np.where(np.isnan(values), column.mean, values)
                out[:, position] = (filled - column.mean) / column.std
                position += 1
            else:
                index = {category: i for i, category in enumerate(column.categories)}
                codes = np.fromiter((index.get(key, -1) for key in values), dtype=np.int64, count=n_rows)
                seen = codes >= 0  # unseen categories keep an all-zero block
                out[np.flatnonzero(seen), position + codes[seen]] = 1.0
                position += len(column.categories)
        return out.astype(np.float32)

    # -- serialization ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: enough to rebuild the transform, here or as Keras layers."""
        return {
            "version": 1,
            "input_kind": self.input_kind,
            "feature_names": self.feature_names,
            "numeric": [
                {"name": c.name, "mean": c.mean, "std": c.std}
                for c in self._columns
                if isinstance(c, _NumericColumn)
            ],
            "categorical": [
                {"name": c.name, "categories": list(c.categories)}
                for c in self._columns
                if isinstance(c, _CategoricalColumn)
            ],
            "missing_category": MISSING_CATEGORY,
            "output_columns": self.output_columns,
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Preprocessor:
        try:
            numeric = {item["name"]: _NumericColumn(item["name"], float(item["mean"]), float(item["std"]))
                       for item in spec["numeric"]}
            categorical = {item["name"]: _CategoricalColumn(item["name"], tuple(map(str, item["categories"])))
                           for item in spec["categorical"]}
            columns = [numeric.get(name) or categorical[name] for name in spec["feature_names"]]
            preprocessor = cls(columns, input_kind=spec.get("input_kind", "array"))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"invalid preprocessor description: {quoted(error)}") from None
        if "output_columns" in spec and list(spec["output_columns"]) != preprocessor.output_columns:
            raise DataError("invalid preprocessor description: output_columns do not match the columns")
        return preprocessor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preprocessor) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value object: equality, no hashing

    def __repr__(self) -> str:
        return f"Preprocessor({len(self._columns)} inputs -> {self.n_features} features, {self.input_kind})"


def _category_keys(values: np.ndarray) -> np.ndarray:
    """Categories are compared as strings; missing values get their own category."""
    import pandas as pd

    missing = pd.isna(values)
    return np.array([MISSING_CATEGORY if gone else str(v) for v, gone in zip(values, missing, strict=True)],
                    dtype=object)


def _frame_numeric(series: pd.Series, name: str, where: str) -> np.ndarray:
    import pandas as pd

    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & ~series.isna()
    if bad.any():
        example = series[bad].iloc[0]
        raise DataError(f"{where}: numeric column {quoted(name)} holds a non-numeric value {quoted(example)}")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


# --------------------------------------------------------------------------------------------------------
# Dataset


@dataclass(eq=False)  # arrays have no single truth value; compare fingerprints and references instead
class Dataset:
    """A loaded, checked, split and preprocessed dataset (see ``load_dataset``)."""

    reference: dict[str, Any]
    fingerprint: str
    task: str
    n_classes: int
    class_names: list[str] | None
    feature_names: list[str]
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    preprocessor: Preprocessor = field(repr=False)
    class_weight: dict[int, float] | None = None
    #: Per-row weights of each split (``sample_weight=COLUMN`` of a CSV); None: every row weighs 1.
    w_train: np.ndarray | None = field(default=None, repr=False)
    w_val: np.ndarray | None = field(default=None, repr=False)
    w_test: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        """Width of the model input, after preprocessing."""
        return int(self.x_train.shape[1])

    @property
    def name(self) -> str:
        source = str(self.reference["source"])
        return source if self.reference["kind"] == "builtin" else Path(source).name

    @property
    def n_rows(self) -> int:
        return len(self.y_train) + len(self.y_val) + len(self.y_test)

    def summary(self) -> str:
        features = f"{len(self.feature_names)} features"
        if self.n_features != len(self.feature_names):
            features += f" ({self.n_features} after encoding)"
        task = self.task if self.task == "regression" else f"{self.task} ({self.n_classes} classes)"
        split = f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)}"
        return f"{self.name}: {self.n_rows} rows, {features}, {task}, split {split}"


@dataclass
class _RawData:
    """What a reader hands to the common path: checked raw columns and target, before any split."""

    where: str  # how messages name the data: the path as given, or the builtin name
    kind: str
    source: str
    fingerprint: str
    columns: dict[str, np.ndarray]  # numeric: float64 with NaN; categorical: category keys (object)
    kinds: dict[str, str]
    target_name: str
    target: np.ndarray  # float64, bool or object (str); no missing values
    input_kind: str
    builtin_task: str | None = None
    class_labels: list[str] | None = None  # builtins' own label names


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    task: str = "auto",
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.2,
    class_weight: str | None = None,
    sample_weight: str | None = None,
    min_rows_per_class: int = 2,
) -> Dataset:
    """Load ``source`` (a builtin name, a ``.csv`` with ``target``, or a ``.npz`` with ``X``/``y``).

    The task is inferred or checked, labels are encoded 0..k-1, rows are split train/val/test (stratified
    for classification; ``test_size`` and ``val_size`` are fractions of all rows) with ``seed``, and the
    features are preprocessed with statistics of the train split only. Raises ``DataError`` for anything
    that would make training fail or mislead.
    """
    _check_options(task, test_size, val_size, class_weight, min_rows_per_class)
    raw = _read_source(str(source), target)
    row_weights = _take_sample_weights(raw, sample_weight) if sample_weight is not None else None
    resolved_task, y, class_names = _resolve_target(raw, task, min_rows_per_class)
    n_classes = 1 if resolved_task == "regression" else len(class_names or ())
    stratify = resolved_task != "regression"
    train, val, test = _split(raw.where, y, stratify, n_classes, test_size, val_size, seed)

    preprocessor = Preprocessor._fit(
        {name: values[train] for name, values in raw.columns.items()}, raw.kinds, input_kind=raw.input_kind
    )

    def features(rows: np.ndarray) -> np.ndarray:
        return preprocessor._transform_columns({name: values[rows] for name, values in raw.columns.items()})

    weights = None
    if class_weight is not None:
        if resolved_task == "regression":
            raise DataError(
                f"{raw.where}: class_weight='balanced' needs a classification task, not regression"
            )
        from sklearn.utils.class_weight import compute_class_weight

        classes = np.arange(n_classes)
        values = compute_class_weight("balanced", classes=classes, y=y[train])
        weights = {int(c): float(w) for c, w in zip(classes, values, strict=True)}

    reference = {
        "source": raw.source,
        "kind": raw.kind,
        "target": target,
        "task": resolved_task,
        "seed": seed,
        "test_size": test_size,
        "val_size": val_size,
        "class_weight": class_weight,
        # Only when given, so references stored by earlier versions read the same.
        **({"sample_weight": sample_weight} if sample_weight is not None else {}),
    }
    return Dataset(
        reference=reference,
        fingerprint=raw.fingerprint,
        task=resolved_task,
        n_classes=n_classes,
        class_names=class_names,
        feature_names=list(raw.columns),
        x_train=features(train),
        y_train=y[train],
        x_val=features(val),
        y_val=y[val],
        x_test=features(test),
        y_test=y[test],
        preprocessor=preprocessor,
        class_weight=weights,
        w_train=None if row_weights is None else row_weights[train],
        w_val=None if row_weights is None else row_weights[val],
        w_test=None if row_weights is None else row_weights[test],
    )


def _take_sample_weights(raw: _RawData, column: str) -> np.ndarray:
    """Remove the weight column from the features and check it: finite, not negative, not all zero."""
    if raw.kind != "csv":
        raise DataError(f"{raw.where}: sample_weight={quoted(column)} names a CSV column; only CSV data has "
                        "per-row weights")
    if column == raw.target_name:
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} is the target column")
    if column not in raw.columns:
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} not found; available columns: "
                        f"{quoted_list([*raw.columns, raw.target_name])}")
    if raw.kinds[column] != _NUMERIC:
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} must hold numbers")
    values = raw.columns[column]
    if not np.isfinite(values).all() or (values < 0).any():
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} must hold finite numbers >= 0 "
                        "in every row (missing values are not allowed)")
    if not (values > 0).any():
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} is zero in every row")
    if len(raw.columns) == 1:
        raise DataError(f"{raw.where}: no feature columns left after taking {quoted(column)} as the sample "
                        "weights; the file needs at least one other column")
    del raw.columns[column], raw.kinds[column]
    return values.astype(np.float64)


def reload_dataset(reference: Mapping[str, Any], *, min_rows_per_class: int = 2) -> Dataset:
    """Load the data a ``Dataset.reference`` describes (for resume and retrain)."""
    try:
        return load_dataset(
            reference["source"],
            target=reference.get("target"),
            task=reference.get("task", "auto"),
            seed=reference.get("seed", 0),
            test_size=reference.get("test_size", 0.2),
            val_size=reference.get("val_size", 0.2),
            class_weight=reference.get("class_weight"),
            sample_weight=reference.get("sample_weight"),
            min_rows_per_class=min_rows_per_class,
        )
    except KeyError as error:
        raise DataError(f"invalid dataset reference: missing {error}") from None


# --------------------------------------------------------------------------------------------------------
# Checks of the options


def _check_options(task: str, test_size: float, val_size: float, class_weight: str | None,
                   min_rows_per_class: int) -> None:
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, but got {quoted(task)}")
    for name, value in (("test_size", test_size), ("val_size", val_size)):
        if not isinstance(value, int | float) or not 0 < value < 1:
            raise DataError(f"{name} must be a fraction strictly between 0 and 1, but got {quoted(value)}")
    if test_size + val_size >= 1:
        raise DataError(
            f"test_size + val_size must leave rows for training (< 1), but got {test_size} + {val_size}"
        )
    if class_weight not in (None, "balanced"):
        raise DataError(f"class_weight must be 'balanced' or None, but got {quoted(class_weight)}")
    if not isinstance(min_rows_per_class, int) or min_rows_per_class < 1:
        raise DataError(f"min_rows_per_class must be a positive integer, but got {min_rows_per_class!r}")


# --------------------------------------------------------------------------------------------------------
# Readers


def _read_source(source: str, target: str | None) -> _RawData:
    if source in BUILTIN_DATASETS:
        if target is not None:
            raise DataError(f"{source}: a builtin dataset has its own target; do not pass a target")
        return _read_builtin(source)
    if source in BUNDLED_CSVS and not Path(source).exists():
        return _read_bundled_csv(source, target)
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix == ".csv":
            return _read_csv(source, path, target)
        if suffix == ".npz":
            if target is not None:
                raise DataError(f"{source}: an .npz file has its target in array 'y'; do not pass "
                                f"target={quoted(target)}")
            return _read_npz(source, path)
        raise DataError(f"{source}: unsupported file type {suffix or '(none)'!r}; use a .csv or .npz file")
    if suffix in (".csv", ".npz"):
        raise DataError(f"{source}: file not found")
    if path.is_dir():
        raise DataError(f"{source}: is a directory; give a .csv or .npz file or a builtin dataset")
    known = ", ".join((*BUILTIN_DATASETS, *BUNDLED_CSVS))
    raise DataError(f"{source}: not a builtin dataset ({known}) nor an existing .csv or .npz file")


def _read_bundled_csv(name: str, target: str | None) -> _RawData:
    from importlib import resources

    column = BUNDLED_CSVS[name]
    if target not in (None, column):
        raise DataError(f"{name}: the bundled dataset's target column is {quoted(column)}; do not pass "
                        f"target={quoted(target)}")
    with resources.as_file(resources.files("hpsearch") / "datasets" / f"{name}.csv") as path:
        raw = _read_csv(name, path, column)
    # Recorded by name, so resume and retrain find it wherever hpsearch is installed.
    raw.source = name
    return raw


def _fingerprint(content: Sequence[bytes], target: str | None) -> str:
    digest = hashlib.sha256()
    for chunk in content:
        digest.update(len(chunk).to_bytes(8, "little"))  # lengths keep chunk boundaries unambiguous
        digest.update(chunk)
    digest.update(b"target:" + (target or "").encode())
    return digest.hexdigest()


def _read_builtin(name: str) -> _RawData:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target)
    names = [str(n) for n in bunch.feature_names]
    labels = [str(n) for n in bunch.target_names] if "target_names" in bunch else None
    return _RawData(
        where=name,
        kind="builtin",
        source=name,
        fingerprint=_fingerprint([x.tobytes(), y.tobytes()], None),
        columns={n: x[:, i] for i, n in enumerate(names)},
        kinds=dict.fromkeys(names, _NUMERIC),
        target_name="target",
        target=y.astype(np.float64),
        input_kind="array",
        builtin_task=_BUILTIN_TASKS[name],
        class_labels=labels,
    )


def _read_csv(where: str, path: Path, target: str | None) -> _RawData:
    import pandas as pd

    content = path.read_bytes()
    if target is None:
        raise DataError(f"{where}: a CSV file needs target=<column> to say which column to predict")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{where}: the file is not UTF-8 text (byte 0x{content[error.start]:02x} at offset "
                        f"{error.start}); save it as UTF-8") from None
    try:
        frame = pd.read_csv(io.BytesIO(content))
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: the file is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{where}: cannot be read as CSV ({str(error).strip().splitlines()[0]})") from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{where}: the file has a header but no data rows")
    if target not in frame.columns:
        raise DataError(
            f"{where}: target column {quoted(target)} not found; available columns: "
            f"{quoted_list(frame.columns)}"
        )
    feature_names = [c for c in frame.columns if c != target]
    if not feature_names:
        raise DataError(f"{where}: no feature columns left after taking {quoted(target)} as the target; the "
                        "file needs at least one other column")

    target_series = frame[target]
    n_missing = int(target_series.isna().sum())
    if n_missing:
        raise DataError(f"{where}: target column {quoted(target)} has {n_missing} missing value"
                        f"{'s' if n_missing != 1 else ''} of {len(frame)} rows; drop or fill them")
    if pd.api.types.is_bool_dtype(target_series):
        y = target_series.to_numpy(dtype=bool)
    elif pd.api.types.is_numeric_dtype(target_series):
        y = target_series.to_numpy(dtype=np.float64)
    else:
        y = np.array([str(v) for v in target_series], dtype=object)

    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name in feature_names:
        series = frame[name]
        if series.isna().all():
            raise DataError(f"{where}: column {quoted(name)} is empty in every row; drop it or fill it")
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise DataError(f"{where}: column {quoted(name)} holds infinite values; features are finite")
            columns[name], kinds[name] = values, _NUMERIC
        else:
            n_distinct = int(series.nunique(dropna=True))
            if n_distinct > MAX_CATEGORIES and n_distinct > len(series) / 2:
                raise DataError(f"{where}: column {quoted(name)} looks like free text or an id ({n_distinct} "
                                "distinct values); drop it or encode it")
            columns[name], kinds[name] = _category_keys(series.to_numpy(dtype=object)), _CATEGORICAL
    return _RawData(
        where=where,
        kind="csv",
        source=str(path.resolve()),
        fingerprint=_fingerprint([content], target),
        columns=columns,
        kinds=kinds,
        target_name=target,
        target=y,
        input_kind="frame",
    )


def _read_npz(where: str, path: Path) -> _RawData:
    import zipfile

    content = path.read_bytes()
    try:
        # allow_pickle=False: a data file must never run code; object arrays are refused below.
        archive = np.load(io.BytesIO(content), allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{where}: cannot be read as an .npz archive ({error})") from None
    if not hasattr(archive, "files"):
        raise DataError(f"{where}: holds a single array, not an .npz archive with arrays 'X' and 'y'")
    arrays: dict[str, np.ndarray] = {}
    for key in ("X", "y"):
        if key not in archive.files:
            raise DataError(f"{where}: array {key!r} is missing; the archive holds "
                            f"{quoted_list(archive.files) or 'no arrays'}, but needs 'X' and 'y'")
        try:
            arrays[key] = archive[key]
        except ValueError:
            raise DataError(f"{where}: array {quoted(key)} holds Python objects; it must hold numbers"
                            f"{'' if key == 'X' else ' or strings'}") from None
    x, y = arrays["X"], arrays["y"]
    if x.ndim != 2:
        raise DataError(f"{where}: array 'X' must be 2-D (rows x features), but has shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise DataError(f"{where}: array 'X' must be numeric, but has dtype {x.dtype}")
    if y.ndim != 1:
        raise DataError(f"{where}: array 'y' must be 1-D (one target per row), but has shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{where}: arrays 'X' and 'y' must have the same number of rows, but X has "
                        f"{len(x)} and y has {len(y)}")
    if x.shape[1] == 0:
        raise DataError(f"{where}: array 'X' has no feature columns; it needs at least one")
    if len(x) == 0:
        raise DataError(f"{where}: arrays 'X' and 'y' have no rows")

    if y.dtype == bool:
        target = y
    elif np.issubdtype(y.dtype, np.number) and not np.iscomplexobj(y):
        target = y.astype(np.float64)
        n_missing = int(np.isnan(target).sum())
        if n_missing:
            raise DataError(f"{where}: array 'y' has {n_missing} missing (NaN) values of {len(y)} rows; "
                            "drop or fill them")
    elif y.dtype.kind in "US":
        target = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in y], dtype=object)
    else:
        raise DataError(f"{where}: array 'y' must hold numbers, booleans or strings, but has dtype {y.dtype}")

    values = x.astype(np.float64)
    names = [f"x{i}" for i in range(values.shape[1])]
    for i, name in enumerate(names):
        column = values[:, i]
        if np.isnan(column).all():
            raise DataError(f"{where}: column {name!r} of array 'X' is missing (NaN) in every row; drop it")
        if np.isinf(column).any():
            raise DataError(f"{where}: column {name!r} of array 'X' holds infinite values; features must be "
                            "finite")
    return _RawData(
        where=where,
        kind="npz",
        source=str(path.resolve()),
        fingerprint=_fingerprint([content], None),
        columns={name: np.ascontiguousarray(values[:, i]) for i, name in enumerate(names)},
        kinds=dict.fromkeys(names, _NUMERIC),
        target_name="y",
        target=target,
        input_kind="array",
    )


# --------------------------------------------------------------------------------------------------------
# Target and task


def _label_name(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 1.0 read from a CSV is the label "1"
    return str(value)


def _resolve_target(
    raw: _RawData, task: str, min_rows_per_class: int
) -> tuple[str, np.ndarray, list[str] | None]:
    """Return (task, encoded y, class names), checking the target fits the task."""
    where, column, y = raw.where, raw.target_name, raw.target
    subject = f"target column {quoted(column)}" if raw.kind == "csv" else f"target {quoted(column)}"
    numeric = y.dtype != object and y.dtype != bool
    if numeric and not np.isfinite(y).all():
        raise DataError(f"{where}: {subject} holds infinite values; targets must be finite")

    if task == "auto":
        if raw.builtin_task is not None:
            task = raw.builtin_task
        elif not numeric:
            task = "classification"
        elif not np.all(y == np.round(y)):
            task = "regression"
        else:
            task = "classification" if len(np.unique(y)) <= MAX_INTEGER_CLASSES else "regression"

    if task == "regression":
        if not numeric:
            candidates = [v for v in y.tolist() if not _is_number(v)] if y.dtype == object else []
            example = candidates[0] if candidates else y[0].item()
            raise DataError(f"{where}: {subject} must be numeric for regression, but holds values such as "
                            f"{quoted(example)}")
        return "regression", y.astype(np.float32), None

    if y.dtype == object:
        labels, encoded = np.unique(y.astype(str), return_inverse=True)
    else:
        labels, encoded = np.unique(y, return_inverse=True)
    if raw.class_labels is not None and len(raw.class_labels) == len(labels):
        names = list(raw.class_labels)
    else:
        names = [_label_name(v) for v in labels.tolist()]
    found = ", ".join(map(quoted, names[:10])) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    if len(names) < 2:
        raise DataError(f"{where}: {subject} has only one class ({found}); classification needs at least 2 "
                        "classes")
    if task == "binary" and len(names) != 2:
        raise DataError(f"{where}: task 'binary' needs exactly 2 classes in {subject}, but found "
                        f"{len(names)}: {found}")
    if task == "classification":
        task = "binary" if len(names) == 2 else "multiclass"

    counts = np.bincount(encoded, minlength=len(names))
    small = [i for i in np.argsort(counts, kind="stable") if counts[i] < min_rows_per_class]
    if small:
        listed = ", ".join(
            f"{quoted(names[i])} ({counts[i]} row{'s' if counts[i] != 1 else ''})" for i in small[:5]
        ) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
        raise DataError(f"{where}: in {subject}, class{'es' if len(small) > 1 else ''} {listed} "
                        f"{'have' if len(small) > 1 else 'has'} fewer than {min_rows_per_class} rows; each "
                        f"class needs at least {min_rows_per_class} rows")
    return task, encoded.astype(np.int32), names


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------------------
# Splits


def _split_sizes(n_rows: int, test_size: float, val_size: float) -> tuple[int, int, int]:
    n_test = math.ceil(test_size * n_rows)
    n_val = math.ceil(val_size * n_rows)
    return n_rows - n_test - n_val, n_val, n_test


def _rows_needed(test_size: float, val_size: float, n_classes: int) -> int:
    """Smallest row count giving each split a row and (stratified) every class a train row."""
    n = MIN_ROWS
    while _split_sizes(n, test_size, val_size)[0] < max(n_classes, 1):
        n += 1
    return n


def _split(where: str, y: np.ndarray, stratify: bool, n_classes: int, test_size: float, val_size: float,
           seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test row indices; stratified splits keep every class in train."""
    n_rows = len(y)
    needed = _rows_needed(test_size, val_size, n_classes if stratify else 1)
    if n_rows < needed:
        extra = f" with {n_classes} classes" if stratify and needed > MIN_ROWS else ""
        raise DataError(f"{where}: {n_rows} rows are too few for a train/validation/test split{extra}; at "
                        f"least {needed} are needed")
    n_train, n_val, n_test = _split_sizes(n_rows, test_size, val_size)
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n_rows)
        return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]

    # Own stratification rather than two sklearn splits: the second sklearn split fails on a class left
    # with a single row, and here each class keeps at least one train row by construction.
    counts = np.bincount(y, minlength=n_classes)
    test_counts = _apportion(counts, n_test, rng)
    val_counts = _apportion(counts - test_counts, n_val, rng)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == label))
        t, v = test_counts[label], val_counts[label]
        parts[2].append(rows[:t])
        parts[1].append(rows[t:t + v])
        parts[0].append(rows[t + v:])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def _apportion(available: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` rows across classes in proportion to ``available`` (largest remainder), leaving each
    class at least one row; ties are broken by ``rng`` so no class is always favoured."""
    caps = np.maximum(available - 1, 0)
    quotas = available * total / available.sum()
    counts = np.minimum(np.floor(quotas).astype(np.int64), caps)
    order = np.lexsort((rng.random(len(available)), -(quotas - np.floor(quotas))))
    short = total - int(counts.sum())
    while short > 0:
        progressed = False
        for i in order:
            if short and counts[i] < caps[i]:
                counts[i] += 1
                short -= 1
                progressed = True
        if not progressed:  # unreachable: _rows_needed guarantees enough rows
            raise AssertionError("cannot apportion rows across classes")
    return counts
