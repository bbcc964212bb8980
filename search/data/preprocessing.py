"""The feature transform of a dataset: standardize numeric columns, one-hot encode categorical ones.

The ``Preprocessor`` is fitted on the train split only and serializes to JSON, so the export step can
rebuild the same transform as Keras layers. pandas is imported only inside the functions that need it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list

from ..errors import DataError

if TYPE_CHECKING:
    import pandas as pd

# Missing categorical values become their own category, so "unknown" can carry signal.
MISSING_CATEGORY = "__missing__"

# The kinds of raw feature column a reader reports and the Preprocessor handles. A DATE column holds ISO
# dates, which become a number (days since 1970-01-01, see ``iso_date_days``) and are then scaled as one.
NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATE = "date"

# An ISO 8601 date, optionally with a time and a UTC offset: 2007-11-11, 2007-11-11T10:00:00,
# 2007-11-11 10:00:00.5+01:00. Anything else stays text, so a column of codes is never read as dates.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class _NumericColumn:
    name: str
    mean: float
    std: float
    date: bool = False  # raw values are ISO dates, turned into days since 1970-01-01 before scaling


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
    def fit_columns(
        cls, columns: Mapping[str, np.ndarray], kinds: Mapping[str, str], *, input_kind: str
    ) -> Preprocessor:
        """Fit on the train split's raw columns, as readers give them (see ``RawData.columns``).

        Args:
            columns: column name -> values: float64 with NaN for ``NUMERIC`` columns, category keys (see
                ``category_keys``) for ``CATEGORICAL`` ones; the order becomes ``feature_names``.
            kinds: column name -> ``NUMERIC``, ``DATE`` (values already in days) or ``CATEGORICAL``.
            input_kind: ``"frame"`` (CSV data, transformed from DataFrames) or ``"array"``.

        Returns:
            The fitted preprocessor.
        """
        fitted: list[_NumericColumn | _CategoricalColumn] = []
        for name, values in columns.items():
            if kinds[name] in (NUMERIC, DATE):
                present = values[~np.isnan(values)]
                # A column can be present overall but missing in every train row; 0/1 keeps it harmless.
                mean = float(present.mean()) if present.size else 0.0
                std = float(present.std()) if present.size else 1.0
                fitted.append(_NumericColumn(name, mean, std if std > 0 else 1.0, kinds[name] == DATE))
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
        """Width of the transformed matrix (one-hot blocks counted in full)."""
        return len(self.output_columns)

    @property
    def has_categorical(self) -> bool:
        """Whether any column is one-hot encoded (array input then may hold strings)."""
        return any(isinstance(column, _CategoricalColumn) for column in self._columns)

    # -- transform ----------------------------------------------------------------------------------------

    def transform(self, data: pd.DataFrame | np.ndarray | Sequence[Sequence[Any]]) -> np.ndarray:
        """Transform raw rows into the model's float32 input matrix."""
        return self.transform_columns(self._raw_columns(data))

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
                column.name: date_days(data[column.name].to_numpy(dtype=object), "the rows to transform",
                                       column.name)
                if isinstance(column, _NumericColumn) and column.date
                else _frame_numeric(data[column.name], column.name, "the rows to transform")
                if isinstance(column, _NumericColumn)
                else category_keys(data[column.name].to_numpy(dtype=object))
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
            if isinstance(column, _NumericColumn) and column.date:
                raw[column.name] = date_days(np.asarray(values, dtype=object), "the rows to transform",
                                             column.name)
            elif isinstance(column, _NumericColumn):
                try:
                    raw[column.name] = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError):
                    raise DataError(
                        f"the rows to transform hold non-numeric values in numeric column {column.name!r}"
                    ) from None
            else:
                raw[column.name] = category_keys(np.asarray(values, dtype=object))
        return raw

    def transform_columns(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """Transform already-parsed raw columns (as ``fit_columns`` takes them) into float32 features."""
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
                # "date" only where true, so descriptions of data without dates read as they always did.
                {"name": c.name, "mean": c.mean, "std": c.std, **({"date": True} if c.date else {})}
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
        """Rebuild a preprocessor from ``to_dict``'s description.

        Raises:
            DataError: the description lacks a field, holds a wrong type, or its ``output_columns``
                disagree with its columns.
        """
        try:
            numeric = {item["name"]: _NumericColumn(item["name"], float(item["mean"]), float(item["std"]),
                                                    bool(item.get("date", False)))
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


def category_keys(values: np.ndarray) -> np.ndarray:
    """Turn raw categorical values into category keys: strings, with missing values as ``MISSING_CATEGORY``.

    Categories are compared as strings so that 1 read from a CSV and "1" given later are the same one.
    """
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



def iso_date_days(values: np.ndarray, where: str, name: str) -> np.ndarray | None:
    """Days since 1970-01-01 (UTC, as float64, NaN where missing) if every present value is an ISO date.

    Days rather than year/month/day parts: one number keeps order and distance (a later egg, a longer
    wait), which is what a network can use after scaling; a time of day is the fraction of the day, and a
    date without a UTC offset is taken as UTC.

    Args:
        values: a column's raw values (strings, with None/NaN for missing ones).
        where: how messages name the data.
        name: the column's name.

    Returns:
        The days, or None when the column holds anything but ISO dates (it is then text, not dates).

    Raises:
        DataError: every value looks like an ISO date but one is no real date (``2007-02-30``).
    """
    import pandas as pd

    present = ~pd.isna(values)
    if not present.any():
        return None
    texts = [str(v).strip() for v in values[present]]
    if not all(isinstance(v, str) for v in values[present]) or not all(_ISO_DATE.fullmatch(t) for t in texts):
        return None
    return _days(texts, present, where, name)


def date_days(values: np.ndarray, where: str, name: str) -> np.ndarray:
    """Days since 1970-01-01 of a column known to hold ISO dates (rows to predict, to transform).

    Raises:
        DataError: a present value is not an ISO date.
    """
    import pandas as pd

    present = ~pd.isna(values)
    texts = [str(v).strip() for v in values[present]]
    for text in texts:
        if not _ISO_DATE.fullmatch(text):
            raise DataError(f"{where}: date column {quoted(name)} holds {quoted(text)}, which is not an ISO "
                            "date (YYYY-MM-DD, optionally with a time)")
    return _days(texts, present, where, name)


def _days(texts: list[str], present: np.ndarray, where: str, name: str) -> np.ndarray:
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(texts, dtype=object), format="ISO8601", utc=True, errors="coerce")
    if parsed.isna().any():
        bad = texts[int(np.flatnonzero(parsed.isna().to_numpy())[0])]
        raise DataError(f"{where}: column {quoted(name)} holds ISO dates, but {quoted(bad)} is no real date; "
                        f"correct it, or leave the column out with {drop_advice(name)}")
    days = np.full(len(present), np.nan)
    nanoseconds = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    days[present] = nanoseconds / _DAY_NS
    return days


#: Column names longer than this are not repeated in the advice (the message names the column already).
_ADVICE_NAME_CHARS = 80


def drop_advice(name: str) -> str:
    """How to leave column ``name`` out, on the shell and from Python, in one short line."""
    if len(name) > _ADVICE_NAME_CHARS:
        return "--drop and the column's name (drop=[name] in Python)"
    return f"--drop {_shell_word(name)} (drop=[{name!r}] in Python)"


def _shell_word(text: str) -> str:
    """A column name as it is typed after an option: quoted when it holds spaces or shell characters."""
    import shlex

    if not text.isprintable():
        # A newline or a control character: the shell's $'...' form, so the sentence stays on one line.
        body = text.encode("unicode_escape").decode("ascii").replace("'", "\\'")
        return f"$'{body}'"
    quoted_text = shlex.quote(text)
    # shlex quotes with single quotes; a name without one reads better in double quotes, as users type it.
    if quoted_text != text and "'" not in text and not any(c in text for c in '"$`\\'):
        return f'"{text}"'
    return quoted_text
