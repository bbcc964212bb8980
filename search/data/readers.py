"""Reading a dataset source: a builtin (scikit-learn) dataset, a bundled or user CSV, or an NPZ archive.

Each reader checks what it reads and hands back ``RawData``: raw feature columns, the target and a
``fingerprint`` of the raw content, before any task resolution, split or preprocessing. pandas and
scikit-learn are imported inside the readers that need them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list

from ..errors import DataError
from .preprocessing import CATEGORICAL, NUMERIC, category_keys

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "iris", "wine", "diabetes")
#: CSV files shipped in ``search/datasets/``, by name, with their target column. ``imbalanced``: breast
#: cancer with malignant cut to 10% of the rows (``scripts/make_imbalanced_csv.py`` regenerates it).
BUNDLED_CSVS: dict[str, str] = {"imbalanced": "diagnosis"}

# A text column with more distinct values than this (and distinct in over half its rows) is an id or free
# text: one-hot encoding it would make a huge, useless input layer.
MAX_CATEGORIES = 50

_BUILTIN_TASKS = {
    "digits": "multiclass",
    "breast_cancer": "binary",
    "iris": "multiclass",
    "wine": "multiclass",
    "diabetes": "regression",
}


@dataclass
class RawData:
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


def read_source(source: str, target: str | None) -> RawData:
    """Read and check ``source``: a builtin name, a bundled CSV name, or a path to a ``.csv`` or ``.npz``.

    Args:
        source: what the user gave; a file of that name takes precedence over a bundled CSV's name.
        target: the CSV column to predict; builtins, bundled CSVs and NPZ archives bring their own.

    Returns:
        The raw, checked columns and target.

    Raises:
        DataError: the source is unknown or missing, the target is given where the data has its own,
            or the content is unusable (the message names the file and column).
    """
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


def _read_bundled_csv(name: str, target: str | None) -> RawData:
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


def _read_builtin(name: str) -> RawData:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.ascontiguousarray(bunch.target)
    names = [str(n) for n in bunch.feature_names]
    labels = [str(n) for n in bunch.target_names] if "target_names" in bunch else None
    return RawData(
        where=name,
        kind="builtin",
        source=name,
        fingerprint=_fingerprint([x.tobytes(), y.tobytes()], None),
        columns={n: x[:, i] for i, n in enumerate(names)},
        kinds=dict.fromkeys(names, NUMERIC),
        target_name="target",
        target=y.astype(np.float64),
        input_kind="array",
        builtin_task=_BUILTIN_TASKS[name],
        class_labels=labels,
    )


def _read_csv(where: str, path: Path, target: str | None) -> RawData:
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
            columns[name], kinds[name] = values, NUMERIC
        else:
            n_distinct = int(series.nunique(dropna=True))
            if n_distinct > MAX_CATEGORIES and n_distinct > len(series) / 2:
                raise DataError(f"{where}: column {quoted(name)} looks like free text or an id ({n_distinct} "
                                "distinct values); drop it or encode it")
            columns[name], kinds[name] = category_keys(series.to_numpy(dtype=object)), CATEGORICAL
    return RawData(
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


def _read_npz(where: str, path: Path) -> RawData:
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
    return RawData(
        where=where,
        kind="npz",
        source=str(path.resolve()),
        fingerprint=_fingerprint([content], None),
        columns={name: np.ascontiguousarray(values[:, i]) for i, name in enumerate(names)},
        kinds=dict.fromkeys(names, NUMERIC),
        target_name="y",
        target=target,
        input_kind="array",
    )

