"""Resolving the task of a dataset and encoding its target: regression values or class labels 0..k-1."""

from __future__ import annotations

from typing import Any

import numpy as np
from hpsearch.spaces.limits import quoted

from ..errors import DataError
from .readers import RawData

#: The tasks a user may ask for; ``auto`` resolves to one of the other three.
TASKS: tuple[str, ...] = ("auto", "binary", "multiclass", "regression")

# An integer target with more distinct values than this is more likely a count or a measure than labels.
MAX_INTEGER_CLASSES = 20


def _label_name(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 1.0 read from a CSV is the label "1"
    return str(value)


def resolve_target(
    raw: RawData, task: str, min_rows_per_class: int
) -> tuple[str, np.ndarray, list[str] | None]:
    """Resolve the task of ``raw`` and encode its target, checking the target fits the task.

    Args:
        raw: the data as read.
        task: one of ``TASKS``; ``"auto"`` infers it (a builtin's own task, else from the target values).
        min_rows_per_class: the fewest rows every class must have.

    Returns:
        (task, y, class names): the task as ``binary``, ``multiclass`` or ``regression``; y as float32
        values for regression or int32 codes 0..k-1; the class names by code, None for regression.

    Raises:
        DataError: a non-finite or non-numeric regression target, a single class, a binary task without
            exactly 2 classes, or a class with too few rows.
    """
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
