"""Data given in memory: a pandas DataFrame or NumPy arrays, encoded so the trial store can keep it.

A study made from a DataFrame in a notebook resumes from the shell, in worker processes and on Dask
workers, so the data must outlive the process that gave it, without a file the user sees. ``in_memory_data``
checks what was given and encodes it once: a DataFrame as gzip'd CSV text, read back through the very
path a CSV file takes (same checks, same column kinds), and arrays as an NPZ archive, read back with
``allow_pickle=False`` through the path an ``.npz`` file takes. Nothing is ever pickled. The study stores
the payload in its database (``Storage.put_data``) under the payload's sha256 and records that key in its
data reference; every reload reads it from there.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from hpsearch.spaces.limits import quoted, quoted_list
from hpsearch.storage import payload_key

from ..errors import DataError
from ..limits import DATA_BYTES
from .readers import NPZ_SPLITS, RawData, parse_csv, parse_npz

#: The formats a payload is kept in, and the stem a study's default name takes from each.
CSV_GZIP = "csv.gz"
NPZ = "npz"
_STEMS = {CSV_GZIP: "dataframe", NPZ: "arrays"}


@dataclass(frozen=True, eq=False)
class InMemoryData:
    """Checked, encoded data given in memory; build it with ``in_memory_data``.

    Attributes:
        format: ``csv.gz`` (a DataFrame) or ``npz`` (arrays).
        payload: the encoded bytes, as the study's database keeps them.
        description: what messages and the study's summary call it, e.g. ``DataFrame (740 rows x 21
            columns)``.
        target: the DataFrame's target column; None for arrays, whose target is ``y``.
    """

    format: str
    payload: bytes = field(repr=False)
    description: str
    target: str | None = None

    @cached_property
    def key(self) -> str:
        """The sha256 of the payload: the key the store keeps it under."""
        return payload_key(self.payload)

    @property
    def stem(self) -> str:
        """The stem of a study's default name: ``dataframe`` or ``arrays``."""
        return _STEMS[self.format]

    def read(self, drop: Sequence[str] = ()) -> RawData:
        """Decode and check the payload as a CSV file or an NPZ archive is checked.

        Args:
            drop: feature columns to leave out.

        Returns:
            The raw columns; ``source`` is the description.

        Raises:
            DataError: the payload is damaged or its content unusable.
        """
        if self.format == CSV_GZIP:
            try:
                content = gzip.decompress(self.payload)
            except (OSError, EOFError) as error:
                raise DataError(f"{self.description}: the stored data is damaged ({error})") from None
            raw = parse_csv(self.description, content, self.target, drop)
        elif self.format == NPZ:
            raw = parse_npz(self.description, self.payload, drop)
        else:
            raise DataError(f"{self.description}: stored data has the unknown format {quoted(self.format)}; "
                            f"a newer hpsearch wrote it")
        raw.source = self.description
        return raw


def stored_data(format: str, payload: bytes, description: str, target: str | None) -> InMemoryData:
    """The data a study keeps in its store, as read back from there (see ``Storage.get_data``).

    Args:
        format: the stored format.
        payload: the stored bytes.
        description: the description recorded with the study.
        target: the target recorded with the study.

    Returns:
        The data, ready to ``read``.

    Raises:
        DataError: the payload is over the ``DATA_BYTES`` limit in force.
    """
    DATA_BYTES.check(len(payload), f"{description}, as stored,")
    return InMemoryData(format, payload, description, target)


def in_memory_data(
    data: Any,
    *,
    target: str | None = None,
    validation: tuple[Any, Any] | None = None,
    test: tuple[Any, Any] | None = None,
) -> InMemoryData:
    """Check and encode a DataFrame or ``(X, y)`` arrays for a study (``RunOptions.data``).

    Args:
        data: a pandas DataFrame, with ``target`` naming its column to predict; or a tuple ``(X, y)`` of
            array-likes (NumPy arrays, lists): ``X`` 2-D numbers (rows x features), ``y`` 1-D numbers,
            booleans or strings.
        target: the DataFrame's column to predict; must be None for arrays.
        validation: ``(X, y)`` arrays used as the validation split as given (arrays only).
        test: ``(X, y)`` arrays used as the test split as given (arrays only). Splits not given are
            taken from ``data``'s rows.

    Returns:
        The encoded data, to pass as ``RunOptions.data``.

    Raises:
        DataError: a wrong type, ragged or mis-shaped arrays, a target column the DataFrame lacks, or
            data over the ``DATA_BYTES`` limit; the sentence names the argument.
    """
    pandas = sys.modules.get("pandas")  # a DataFrame can only exist if pandas is already imported
    if pandas is not None and isinstance(data, pandas.DataFrame):
        if validation is not None or test is not None:
            given = "validation" if validation is not None else "test"
            raise DataError(f"{given}= takes (X, y) arrays beside (X, y) data; a DataFrame's validation and "
                            "test rows are split from its own rows, so leave it out")
        return _frame_data(data, target)
    if isinstance(data, tuple | list) and len(data) == 2:
        if target is not None:
            raise DataError(f"target={quoted(target)} names a DataFrame column; (X, y) arrays carry their "
                            "target in y, so leave target out")
        return _array_data(data, validation, test)
    raise DataError(f"data must be a pandas DataFrame or a tuple (X, y) of arrays, but got "
                    f"{type(data).__name__}")


def _frame_data(frame: Any, target: str | None) -> InMemoryData:
    if not isinstance(target, str):
        raise DataError(f"target must name the DataFrame's column to predict, but got {quoted(target)}")
    columns = [str(c) for c in frame.columns]
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        raise DataError(f"data: the DataFrame has several columns named {quoted(doubled[0])}; column names "
                        "must be unique")
    if target not in columns:
        raise DataError(f"target column {quoted(target)} is not in the DataFrame; its columns are "
                        f"{quoted_list(columns)}")
    if len(frame) == 0:
        raise DataError("data: the DataFrame has no rows")
    description = f"DataFrame ({len(frame)} rows x {len(columns)} columns)"
    # Whatever the frame's index, only its columns are data; dates come out in ISO form.
    text = frame.set_axis(columns, axis=1).to_csv(index=False, date_format=None).encode("utf-8")
    # mtime=0: the same frame encodes to the same bytes, hence the same key, in every run.
    payload = gzip.compress(text, compresslevel=6, mtime=0)
    DATA_BYTES.check(len(payload), "data: the DataFrame, as gzip'd CSV,")
    return InMemoryData(CSV_GZIP, payload, description, target)


def _array_data(data: Sequence[Any], validation: Any, test: Any) -> InMemoryData:
    arrays: dict[str, np.ndarray] = {}
    shapes: list[str] = []
    for split, given, argument in (("train", data, "data"), ("val", validation, "validation"),
                                   ("test", test, "test")):
        if given is None:
            continue
        if not isinstance(given, tuple | list) or len(given) != 2:
            raise DataError(f"{argument} must be a tuple (X, y) of arrays, but got {type(given).__name__}")
        x_key, y_key = NPZ_SPLITS[split]
        x = _as_array(given[0], f"{argument}: X", numeric=True)
        y = _as_array(given[1], f"{argument}: y", numeric=False)
        if x.ndim != 2:
            raise DataError(f"{argument}: X must be 2-D (rows x features), but has shape {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{argument}: y must be 1-D (one target per row), but has shape {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{argument}: X and y must have the same number of rows, but X has {len(x)} and "
                            f"y has {len(y)}")
        if split != "train" and x.shape[1] != arrays["X"].shape[1]:
            raise DataError(f"{argument}: X has {x.shape[1]} columns, but the data's X has "
                            f"{arrays['X'].shape[1]}; every split needs the same feature columns")
        arrays[x_key], arrays[y_key] = x, y
        if split != "train":
            shapes.append(f"{'validation' if split == 'val' else 'test'} {len(x)} rows")
    x = arrays["X"]
    description = f"arrays ({len(x)} rows x {x.shape[1] if x.ndim == 2 else 0} columns"
    description += "".join(f", {shape}" for shape in shapes) + ")"
    payload = _npz_bytes(arrays)
    DATA_BYTES.check(len(payload), "data: the arrays, as NPZ,")
    return InMemoryData(NPZ, payload, description, None)


def _as_array(value: Any, argument: str, *, numeric: bool) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        # NumPy refuses ragged nested lists ("inhomogeneous shape").
        raise DataError(f"{argument} is ragged: its rows must all have the same length") from None
    if array.dtype == object:
        items = array.ravel().tolist()
        if not numeric and items and all(isinstance(v, str) for v in items):
            return array.astype(str)
        odd = next((v for v in items if not isinstance(v, bool | int | float | str)), None)
        what = "numbers" if numeric else "numbers, booleans or strings"
        held = f"{type(odd).__name__} values" if odd is not None else "values of mixed types"
        raise DataError(f"{argument} must hold {what}, but holds {held}")
    if numeric and not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{argument} must hold numbers, but has dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise DataError(f"{argument} must hold real numbers, but holds complex ones")
    return array


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An NPZ archive of ``arrays`` whose bytes depend on the arrays only (no file times), so the same
    arrays always get the same key; ``np.savez`` stamps each member with the current time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()
