"""Reading a dataset source: a builtin (scikit-learn) dataset, a bundled or user CSV, or an NPZ archive.

Each reader checks what it reads and hands back ``RawData``: raw feature columns, the target and a
``fingerprint`` of the raw content, before any task resolution, split or preprocessing. pandas and
scikit-learn are imported inside the readers that need them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list

from ..errors import DataError
from .preprocessing import CATEGORICAL, DATE, NUMERIC, category_keys, drop_advice, iso_date_days

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
    #: Row indices of splits the data brings itself (``val``, ``test`` of an NPZ's ``X_val``/``X_test``);
    #: every other row is for training (and for the splits it does not bring). None: split every row.
    given_splits: dict[str, np.ndarray] | None = None
    #: One line each about what was done to the rows as read (rows without a target left out).
    notes: list[str] = field(default_factory=list)


def read_source(source: str, target: str | None, drop: Sequence[str] = ()) -> RawData:
    """Read and check ``source``: a builtin name, a bundled CSV name, or a path to a ``.csv`` or ``.npz``.

    Args:
        source: what the user gave; a file of that name takes precedence over a bundled CSV's name.
        target: the CSV column to predict; builtins, bundled CSVs and NPZ archives bring their own.
        drop: feature columns to leave out (``--drop``); each must be a column of the data.

    Returns:
        The raw, checked columns and target.

    Raises:
        DataError: the source is unknown or missing, the target is given where the data has its own, a
            column to drop is not in the data, or the content is unusable (the message names the file and
            column).
    """
    if source in BUILTIN_DATASETS:
        if target is not None:
            raise DataError(f"{source}: a builtin dataset has its own target; do not pass a target")
        return _drop_columns(_read_builtin(source), drop)
    if source in BUNDLED_CSVS and not Path(source).exists():
        return _read_bundled_csv(source, target, drop)
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix == ".csv":
            raw = parse_csv(source, path.read_bytes(), target, drop)
            raw.source = str(path.resolve())
            return raw
        if suffix == ".npz":
            if target is not None:
                raise DataError(f"{source}: an .npz file has its target in array 'y'; do not pass "
                                f"target={quoted(target)}")
            raw = parse_npz(source, path.read_bytes(), drop)
            raw.source = str(path.resolve())
            return raw
        raise DataError(f"{source}: unsupported file type {suffix or '(none)'!r}; use a .csv or .npz file")
    if suffix in (".csv", ".npz"):
        raise DataError(f"{source}: file not found")
    if path.is_dir():
        raise DataError(f"{source}: is a directory; give a .csv or .npz file or a builtin dataset")
    known = ", ".join((*BUILTIN_DATASETS, *BUNDLED_CSVS))
    raise DataError(f"{source}: not a builtin dataset ({known}) nor an existing .csv or .npz file")


def _drop_columns(raw: RawData, drop: Sequence[str]) -> RawData:
    """Leave the ``drop`` columns out of data whose columns are numbered or named by its source."""
    for name in drop:
        if name not in raw.columns:
            raise DataError(f"{raw.where}: cannot drop column {quoted(name)}, which the data does not have; "
                            f"its feature columns are {quoted_list(raw.columns)}")
        del raw.columns[name], raw.kinds[name]
    if not raw.columns:
        raise DataError(f"{raw.where}: dropping {quoted_list(drop)} leaves no feature column; keep at least "
                        "one")
    if drop:
        raw.fingerprint = _with_drop(raw.fingerprint, drop)
    return raw


def _with_drop(fingerprint: str, drop: Sequence[str]) -> str:
    # The same file with other columns left out is other data to the trials: a warm start or a comparison
    # must not take one for the other. Without --drop the fingerprint is the one earlier versions stored.
    return hashlib.sha256((fingerprint + "\0drop:" + "\0".join(sorted(drop))).encode()).hexdigest()


def _read_bundled_csv(name: str, target: str | None, drop: Sequence[str]) -> RawData:
    from importlib import resources

    column = BUNDLED_CSVS[name]
    if target not in (None, column):
        raise DataError(f"{name}: the bundled dataset's target column is {quoted(column)}; do not pass "
                        f"target={quoted(target)}")
    with resources.as_file(resources.files("hpsearch") / "datasets" / f"{name}.csv") as path:
        raw = parse_csv(name, path.read_bytes(), column, drop)
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


def parse_csv(where: str, content: bytes, target: str | None, drop: Sequence[str] = ()) -> RawData:
    """Check and read the bytes of a CSV file (or of a DataFrame kept as CSV text) into ``RawData``.

    Args:
        where: how messages name the data (the path as given, ``the DataFrame``).
        content: the CSV text, UTF-8.
        target: the column to predict.
        drop: columns to leave out before any column is checked.

    Returns:
        The raw columns; ``source`` is ``where`` (the caller records a resolved path instead).

    Raises:
        DataError: the text is not UTF-8 CSV, or a column or the target is unusable.
    """
    import pandas as pd

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
    for name in drop:
        if name == target:
            raise DataError(f"{where}: cannot drop {quoted(name)}: it is the target column")
        if name not in frame.columns:
            raise DataError(f"{where}: cannot drop column {quoted(name)}, which the file does not have; its "
                            f"columns are {quoted_list(frame.columns)}")
    feature_names = [c for c in frame.columns if c != target and c not in drop]
    if not feature_names:
        left = f" and leaving out {quoted_list(drop)}" if drop else ""
        raise DataError(f"{where}: no feature columns left after taking {quoted(target)} as the target"
                        f"{left}; the file needs at least one other column")

    notes: list[str] = []
    unlabelled = frame[target].isna().to_numpy()
    n_missing = int(unlabelled.sum())
    if n_missing == len(frame):
        raise DataError(f"{where}: target column {quoted(target)} is missing in every row; it needs values "
                        "to learn from")
    if n_missing:
        # Rows without a label teach nothing; leaving them out (and saying so) beats refusing the file.
        frame = frame.loc[~unlabelled].reset_index(drop=True)
        notes.append(f"{where}: left out {n_missing} row{'s' if n_missing != 1 else ''} whose target "
                     f"{quoted(target)} is missing; {len(frame)} rows remain")
    target_series = frame[target]
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
            raise DataError(f"{where}: column {quoted(name)} is empty in every row; leave it out with "
                            f"{drop_advice(name)} or fill it")
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise DataError(f"{where}: column {quoted(name)} holds infinite values; features are finite")
            columns[name], kinds[name] = values, NUMERIC
            continue
        raw_values = series.to_numpy(dtype=object)
        days = iso_date_days(raw_values, where, name)
        if days is not None:
            columns[name], kinds[name] = days, DATE
            continue
        n_distinct = int(series.nunique(dropna=True))
        if n_distinct > MAX_CATEGORIES and n_distinct > len(series) / 2:
            raise DataError(f"{where}: column {quoted(name)} looks like free text or an id ({n_distinct} "
                            f"distinct values); leave it out with "
                            f"{drop_advice(name)} or encode it")
        columns[name], kinds[name] = category_keys(raw_values), CATEGORICAL
    fingerprint = _fingerprint([content], target)
    return RawData(
        where=where,
        kind="csv",
        source=where,
        fingerprint=_with_drop(fingerprint, drop) if drop else fingerprint,
        columns=columns,
        kinds=kinds,
        target_name=target,
        target=y,
        input_kind="frame",
        notes=notes,
    )


#: Arrays of an NPZ archive: the rows to learn from, and optional splits it brings itself, in pairs.
NPZ_SPLITS: dict[str, tuple[str, str]] = {"train": ("X", "y"), "val": ("X_val", "y_val"),
                                          "test": ("X_test", "y_test")}


def parse_npz(where: str, content: bytes, drop: Sequence[str] = ()) -> RawData:
    """Check and read the bytes of an NPZ archive (or of arrays given in memory) into ``RawData``.

    The archive holds ``X`` (2-D, numeric) and ``y`` (1-D), and may hold ``X_val``/``y_val`` and
    ``X_test``/``y_test``: splits used as given (see ``RawData.given_splits``). Rows whose target is NaN
    are left out with a note. Read with ``allow_pickle=False``: data never runs code.

    Args:
        where: how messages name the data (the path as given, ``the arrays``).
        content: the archive's bytes.
        drop: feature columns (``x0``, ``x1``, ...) to leave out.

    Returns:
        The raw columns, every split's rows in one table; ``source`` is ``where``.

    Raises:
        DataError: the archive cannot be read, lacks an array, or holds arrays of the wrong shape or type.
    """
    import zipfile

    try:
        # allow_pickle=False: a data file must never run code; object arrays are refused below.
        archive = np.load(io.BytesIO(content), allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{where}: cannot be read as an .npz archive ({error})") from None
    if not hasattr(archive, "files"):
        raise DataError(f"{where}: holds a single array, not an .npz archive with arrays 'X' and 'y'")
    for x_key, y_key in NPZ_SPLITS.values():
        if x_key == "X":
            continue
        if (x_key in archive.files) != (y_key in archive.files):
            present, absent = (x_key, y_key) if x_key in archive.files else (y_key, x_key)
            raise DataError(f"{where}: array {present!r} needs its pair {absent!r}, which is missing")
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    notes: list[str] = []
    width: int | None = None
    for split, (x_key, y_key) in NPZ_SPLITS.items():
        if split != "train" and x_key not in archive.files:
            continue
        x, y = (_npz_array(where, archive, key) for key in (x_key, y_key))
        x, y = _checked_pair(where, x, y, x_key, y_key)
        if width is not None and x.shape[1] != width:
            raise DataError(f"{where}: array {x_key!r} has {x.shape[1]} columns, but 'X' has {width}; every "
                            "split needs the same feature columns")
        width = x.shape[1]
        if y.dtype != object and y.dtype != bool:
            unlabelled = np.isnan(y)
            n_missing = int(unlabelled.sum())
            if n_missing == len(y):
                raise DataError(f"{where}: array {y_key!r} is missing (NaN) in every row; it needs values to "
                                "learn from")
            if n_missing:
                x, y = x[~unlabelled], y[~unlabelled]
                notes.append(f"{where}: left out {n_missing} row{'s' if n_missing != 1 else ''} of {x_key!r} "
                             f"whose target {y_key!r} is missing (NaN); {len(y)} rows remain")
        parts[split] = (x, y)

    values = np.concatenate([x for x, _ in parts.values()])
    target = np.concatenate([y for _, y in parts.values()])
    given: dict[str, np.ndarray] = {}
    offset = 0
    for split, (_, y) in parts.items():
        if split != "train":
            given[split] = np.arange(offset, offset + len(y))
        offset += len(y)
    names = [f"x{i}" for i in range(values.shape[1])]
    for i, name in enumerate(names):
        column = values[:, i]
        if np.isnan(column).all():
            raise DataError(f"{where}: column {name!r} of array 'X' is missing (NaN) in every row; drop it")
        if np.isinf(column).any():
            raise DataError(f"{where}: column {name!r} of array 'X' holds infinite values; features must be "
                            "finite")
    raw = RawData(
        where=where,
        kind="npz",
        source=where,
        fingerprint=_fingerprint([content], None),
        columns={name: np.ascontiguousarray(values[:, i]) for i, name in enumerate(names)},
        kinds=dict.fromkeys(names, NUMERIC),
        target_name="y",
        target=target,
        input_kind="array",
        given_splits=given or None,
        notes=notes,
    )
    return _drop_columns(raw, drop)


def _npz_array(where: str, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    if key not in archive.files:
        raise DataError(f"{where}: array {key!r} is missing; the archive holds "
                        f"{quoted_list(archive.files) or 'no arrays'}, but needs 'X' and 'y'")
    try:
        return archive[key]
    except ValueError:
        raise DataError(f"{where}: array {quoted(key)} holds Python objects; it must hold numbers"
                        f"{'' if key.startswith('X') else ' or strings'}") from None


def _checked_pair(where: str, x: np.ndarray, y: np.ndarray, x_key: str, y_key: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Features as float64 (rows x columns) and the target as float64, bool or str objects."""
    if x.ndim != 2:
        raise DataError(f"{where}: array {x_key!r} must be 2-D (rows x features), but has shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise DataError(f"{where}: array {x_key!r} must be numeric, but has dtype {x.dtype}")
    if y.ndim != 1:
        raise DataError(f"{where}: array {y_key!r} must be 1-D (one target per row), but has shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{where}: arrays {x_key!r} and {y_key!r} must have the same number of rows, but "
                        f"{x_key} has {len(x)} and {y_key} has {len(y)}")
    if x.shape[1] == 0:
        raise DataError(f"{where}: array {x_key!r} has no feature columns; it needs at least one")
    if len(x) == 0:
        raise DataError(f"{where}: arrays {x_key!r} and {y_key!r} have no rows")
    if y.dtype == bool:
        target = y
    elif np.issubdtype(y.dtype, np.number) and not np.iscomplexobj(y):
        target = y.astype(np.float64)
    elif y.dtype.kind in "US":
        target = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in y], dtype=object)
    else:
        raise DataError(f"{where}: array {y_key!r} must hold numbers, booleans or strings, but has dtype "
                        f"{y.dtype}")
    return x.astype(np.float64), target
