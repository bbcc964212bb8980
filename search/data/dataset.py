"""The ``Dataset`` a search trains on, and ``load_dataset``/``reload_dataset`` that build it.

``load_dataset`` checks the options, reads the source, resolves the task, splits the rows and fits the
preprocessing on the train split; ``reload_dataset`` does the same from a stored ``Dataset.reference``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list

from ..errors import DataError
from .memory import InMemoryData
from .preprocessing import NUMERIC, Preprocessor
from .readers import RawData, read_source
from .splitting import split_off, split_rows
from .targets import TASKS, resolve_target


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
    #: One line each about what loading did to the rows (rows without a target left out), for the user.
    notes: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        """Width of the model input, after preprocessing."""
        return int(self.x_train.shape[1])

    @property
    def name(self) -> str:
        """The builtin or bundled name, the file name of a CSV/NPZ (without its folder), or what data given
        in memory is (``DataFrame (740 rows x 21 columns)``)."""
        source = str(self.reference["source"])
        return source if self.reference["kind"] in ("builtin", STORED) else Path(source).name

    @property
    def n_rows(self) -> int:
        """Rows of all three splits together."""
        return len(self.y_train) + len(self.y_val) + len(self.y_test)

    def summary(self) -> str:
        """One line for the CLI: name, rows, features, task and split sizes."""
        features = f"{len(self.feature_names)} features"
        if self.n_features != len(self.feature_names):
            features += f" ({self.n_features} after encoding)"
        task = self.task if self.task == "regression" else f"{self.task} ({self.n_classes} classes)"
        split = f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)}"
        return f"{self.name}: {self.n_rows} rows, {features}, {task}, split {split}"


#: The ``kind`` of a reference to data given in memory and kept in the study's store under its ``key``.
STORED = "stored"


def load_dataset(
    source: str | InMemoryData,
    *,
    target: str | None = None,
    task: str = "auto",
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.2,
    class_weight: str | None = None,
    sample_weight: str | None = None,
    min_rows_per_class: int = 2,
    drop: Sequence[str] = (),
) -> Dataset:
    """Load ``source`` (a builtin name, a ``.csv`` with ``target``, a ``.npz`` with ``X``/``y``, or data
    given in memory, see ``in_memory_data``).

    The task is inferred or checked, labels are encoded 0..k-1, rows are split train/val/test (stratified
    for classification; ``test_size`` and ``val_size`` are fractions of all rows) with ``seed``, and the
    features are preprocessed with statistics of the train split only. Raises ``DataError`` for anything
    that would make training fail or mislead.

    ``class_weight="balanced"`` weighs classes inversely to their train frequency; ``sample_weight``
    names a CSV column of per-row weights, which is then no feature; a class needs at least
    ``min_rows_per_class`` rows. ``drop`` names feature columns to leave out. Rows whose target is
    missing are left out, each such step described in ``Dataset.notes``.

    Raises:
        DataError: the options, the source or its content cannot be used; the message names the file (or
            the data), the column and what must hold.
    """
    _check_options(task, test_size, val_size, class_weight, min_rows_per_class)
    drop = _check_drop(drop)
    if isinstance(source, InMemoryData):
        if target not in (None, source.target):
            raise DataError(f"{source.description}: its target is {quoted(source.target)}; do not pass "
                            f"target={quoted(target)}")
        raw = source.read(drop)
        target = source.target
    else:
        raw = read_source(str(source), target, drop)
    row_weights = _take_sample_weights(raw, sample_weight) if sample_weight is not None else None
    resolved_task, y, class_names = resolve_target(raw, task, min_rows_per_class)
    n_classes = 1 if resolved_task == "regression" else len(class_names or ())
    stratify = resolved_task != "regression"
    if raw.given_splits is None:
        train, val, test = split_rows(raw.where, y, stratify, n_classes, test_size, val_size, seed)
    else:
        train, val, test = _given_splits(raw, y, stratify, n_classes, test_size, val_size, seed)

    preprocessor = Preprocessor.fit_columns(
        {name: values[train] for name, values in raw.columns.items()}, raw.kinds, input_kind=raw.input_kind
    )

    def features(rows: np.ndarray) -> np.ndarray:
        return preprocessor.transform_columns({name: values[rows] for name, values in raw.columns.items()})

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
        "kind": STORED if isinstance(source, InMemoryData) else raw.kind,
        # Where data given in memory is kept: its format and key in the study's store.
        **({"format": source.format, "key": source.key} if isinstance(source, InMemoryData) else {}),
        "target": target,
        "task": resolved_task,
        "seed": seed,
        "test_size": test_size,
        "val_size": val_size,
        "class_weight": class_weight,
        # Only when given, so references stored by earlier versions read the same.
        **({"sample_weight": sample_weight} if sample_weight is not None else {}),
        **({"drop": list(drop)} if drop else {}),
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
        notes=list(raw.notes),
    )


def _check_drop(drop: Sequence[str]) -> list[str]:
    if isinstance(drop, str) or not all(isinstance(name, str) for name in drop):
        raise DataError(f"drop must be a list of column names, but got {quoted(drop)}")
    doubled = sorted({name for name in drop if list(drop).count(name) > 1})
    if doubled:
        raise DataError(f"drop names column {quoted(doubled[0])} twice; name each column once")
    return list(drop)


def _given_splits(raw: RawData, y: np.ndarray, stratify: bool, n_classes: int, test_size: float,
                  val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits the data brings are used as given; one it lacks is taken from the training rows."""
    given = raw.given_splits or {}
    taken = np.concatenate([np.asarray(rows, dtype=np.int64) for rows in given.values()])
    pool = np.setdiff1d(np.arange(len(y)), taken)
    splits = dict(given)
    for split, size in (("val", val_size), ("test", test_size)):
        if split not in splits:
            keep, part = split_off(raw.where, y[pool], stratify, n_classes, size, seed,
                                   "validation" if split == "val" else "test")
            pool, splits[split] = pool[keep], pool[part]
    return pool, np.asarray(splits["val"]), np.asarray(splits["test"])


def _take_sample_weights(raw: RawData, column: str) -> np.ndarray:
    """Remove the weight column from the features and check it: finite, not negative, not all zero."""
    if raw.kind != "csv":
        raise DataError(f"{raw.where}: sample_weight={quoted(column)} names a CSV column; only CSV data has "
                        "per-row weights")
    if column == raw.target_name:
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} is the target column")
    if column not in raw.columns:
        raise DataError(f"{raw.where}: sample_weight column {quoted(column)} not found; available columns: "
                        f"{quoted_list([*raw.columns, raw.target_name])}")
    if raw.kinds[column] != NUMERIC:
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


def reload_dataset(
    reference: Mapping[str, Any], *, min_rows_per_class: int = 2, stored: InMemoryData | None = None
) -> Dataset:
    """Load the data a ``Dataset.reference`` describes (for resume and retrain).

    Args:
        reference: a ``Dataset.reference`` as stored with a study.
        min_rows_per_class: as for ``load_dataset``.
        stored: for a reference of kind ``stored`` (data given in memory), that data as read back from
            the study's store (``Storage.get_data`` and ``stored_data``).

    Returns:
        The same rows, splits and preprocessing as when the reference was made.

    Raises:
        DataError: as ``load_dataset`` does, the reference lacks its ``source``, or it names stored data
            and ``stored`` is not given.
    """
    try:
        source: str | InMemoryData = reference["source"]
        if reference.get("kind") == STORED:
            if stored is None:
                raise DataError(f"{source}: the data was given in memory and is kept in the study's "
                                "database; reload it through the study's store")
            source = stored
        return load_dataset(
            source,
            target=reference.get("target"),
            task=reference.get("task", "auto"),
            seed=reference.get("seed", 0),
            test_size=reference.get("test_size", 0.2),
            val_size=reference.get("val_size", 0.2),
            class_weight=reference.get("class_weight"),
            sample_weight=reference.get("sample_weight"),
            min_rows_per_class=min_rows_per_class,
            drop=reference.get("drop", ()),
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

