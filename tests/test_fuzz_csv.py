"""Property-based fuzzing of the CSV reader: any bytes give a dataset or one clear DataError.

A clear error is a :class:`hpsearch.errors.DataError` (``exit_code == 2``), one line, of bounded length: a
file of a million columns or a header of a megabyte must not make the message grow. The runs are
derandomized: the same inputs every time, a few seconds each.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hpsearch.data import load_dataset
from hpsearch.errors import DataError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

MAX_MESSAGE = 2000
FUZZ = settings(derandomize=True, database=None, max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_DIR = Path(tempfile.mkdtemp(prefix="hpsearch-fuzz-csv-"))

_headers = st.sampled_from(["label", "a", "b", "a", "", " ", "label.1", "Unnamed: 0", "x\ny", 'q"q', "é",
                            "1", "nan", "a,b", "label "])
_cells = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "2.5", "nan", "NaN", "inf", "-inf", "1e400", "yes", "no", "true",
                     "False", "NA", "null", " ", '"', "'", "a,b", "x\ny", "9" * 30, "é", "\t"]),
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@st.composite
def _tables(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CSV table (as bytes) and the target column to ask for."""
    header = draw(st.lists(_headers, min_size=1, max_size=5))
    n_rows = draw(st.integers(0, 12) | st.integers(20, 60))
    rows = [[draw(_cells) for _ in header] for _ in range(n_rows)]
    well_behaved = bool(rows) and draw(st.booleans())
    if well_behaved:
        # Numeric features and a small-class target, so some tables get through to task inference, the
        # split and the preprocessing; a few cells are still damaged.
        classes = draw(st.integers(1, 3))
        rows = [[*(str(index * 0.5 + column) for column in range(len(row) - 1)), str(index % classes)]
                for index, row in enumerate(rows)]
        for _ in range(draw(st.integers(0, 2))):
            rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, len(header) - 1))] = draw(_cells)
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC])))
    writer.writerow(header)
    writer.writerows(rows[: draw(st.integers(0, len(rows)))] if draw(st.booleans()) else rows)
    data = buffer.getvalue().encode("utf-8")
    # Damage: a ragged row, a stray quote, bytes that are not UTF-8, a truncated file.
    damage = draw(st.sampled_from(["none", "none", "none", "ragged", "quote", "latin1", "truncate", "bom",
                                   "nul"]))
    if damage == "ragged":
        data += b"1,2,3,4,5,6,7\n"
    elif damage == "quote":
        data = data.replace(b",", b',"', 1)
    elif damage == "latin1":
        data += b"\xe9,\xff\n"
    elif damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "nul":
        data = data.replace(b",", b"\x00,", 1)
    target = header[-1] if well_behaved and draw(st.booleans()) else draw(st.sampled_from(header) | _headers)
    return data, target


def _check(data: bytes, target: str, *, record: bool = True, **options) -> None:
    path = _DIR / "data.csv"
    path.write_bytes(data)
    try:
        dataset = load_dataset(str(path), target=target, **options)
    except Exception as error:  # noqa: BLE001 - the property: nothing but a clear DataError
        assert isinstance(error, DataError), f"unexpected {type(error).__name__}: {error}"
        assert error.exit_code == 2
        message = str(error)
        assert message and "\n" not in message, message
        assert len(message) <= MAX_MESSAGE, len(message)
        if record:
            event("clear error")
    else:
        assert dataset.n_rows >= 1
        if record:
            event(f"dataset ({dataset.task})")


@FUZZ
@given(_tables(), st.sampled_from(["auto", "binary", "multiclass", "regression"]))
def test_any_table_gives_a_dataset_or_one_clear_error(table, task):
    data, target = table
    _check(data, target, task=task)


@FUZZ
@given(st.binary(max_size=300), _headers)
def test_any_bytes_give_a_dataset_or_one_clear_error(data, target):
    _check(data, target)


def test_a_huge_header_gives_a_bounded_message():
    """A missing target lists the available columns: a few of them, not 100,000."""
    header = ",".join(f"column_{index}_{'x' * 20}" for index in range(100_000))
    _check((header + "\n" + ",".join("1" for _ in range(100_000)) + "\n").encode(), "label", record=False)
