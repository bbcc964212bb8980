"""Deterministic train/validation/test splits, stratified by class for classification."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError

# Fewer rows than this cannot give a meaningful train/validation/test split.
MIN_ROWS = 10


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


def split_rows(where: str, y: np.ndarray, stratify: bool, n_classes: int, test_size: float, val_size: float,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/val/test row indices; stratified splits keep every class in train.

    Args:
        where: how messages name the data.
        y: the encoded target (class codes 0..n_classes-1 when ``stratify``).
        stratify: split each class in proportion (classification) or all rows at once (regression).
        n_classes: the number of classes; ignored unless ``stratify``.
        test_size, val_size: fractions of all rows, rounded up.
        seed: the same seed and data give the same rows.

    Returns:
        The (train, validation, test) row indices.

    Raises:
        DataError: too few rows to give each split a row and every class a train row.
    """
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


def split_off(where: str, y: np.ndarray, stratify: bool, n_classes: int, size: float, seed: int,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """Take one split off the rows of ``y`` (the other splits were given): a fraction ``size`` of them,
    rounded up, stratified for classification with every class keeping a row.

    Args:
        where: how messages name the data.
        y: the encoded target of the rows to split.
        stratify: split each class in proportion.
        n_classes: the number of classes; ignored unless ``stratify``.
        size: the fraction of the rows to take.
        seed: the same seed and rows give the same split.
        what: the split's name for messages (``validation``, ``test``).

    Returns:
        (kept, taken): positions into ``y``.

    Raises:
        DataError: too few rows to leave training rows (and every class one) and take a row.
    """
    n_rows = len(y)
    n_part = math.ceil(size * n_rows)
    classes = int(len(np.unique(y))) if stratify else 1
    if n_part < 1 or n_rows - n_part < max(classes, 1):
        raise DataError(f"{where}: {n_rows} training rows are too few to take a {what} split from; give "
                        f"the {what} rows too, or more rows")
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n_rows)
        return order[n_part:], order[:n_part]
    counts = np.bincount(y, minlength=n_classes)
    part_counts = _apportion(counts, n_part, rng)
    kept, taken = [], []
    for label in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == label))
        taken.append(rows[:part_counts[label]])
        kept.append(rows[part_counts[label]:])
    return rng.permutation(np.concatenate(kept)), rng.permutation(np.concatenate(taken))


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
