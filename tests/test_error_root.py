"""One error root: every error meant for a user derives from ``hpsearch.errors.HpsearchError``.

Bad input is an ``InputError`` (a ``ValueError``, exit code 2); the exit codes and messages the CLI gives
are the ones it gave before the root existed.
"""

from __future__ import annotations

import ast
import inspect
import sqlite3
from types import ModuleType

import hpsearch.errors
import hpsearch.spaces
import hpsearch.storage
import pytest
from hpsearch.errors import HpsearchError, InputError

#: Each public error's exit code, as the CLI reported it before the root (the root must not change one).
EXPECTED_EXIT_CODES = {
    "HpsearchError": 1,
    "InputError": 2,
    "UsageError": 2,
    "DataError": 2,
    "StudyMismatchError": 2,
    "SearchFailedError": 1,
    "NoResultError": 1,
    "StorageTroubleError": 1,
    "FitProcessLostError": 1,
    "ClusterLostError": 1,
    "StorageError": 1,
    "DatabaseNotFoundError": 2,
    "StorageUrlError": 2,
    "NotOurDatabaseError": 2,
    "SchemaError": 2,
    "StudyNotFoundError": 2,
    "StudyExistsError": 2,
    "TrialNotFoundError": 2,
    "StoredDataNotFoundError": 2,
    "TrialConflictError": 1,
    "TrialNotRunningError": 1,
    "BudgetReachedError": 1,
    "DuplicateTrialError": 1,
    "SpaceError": 2,
}


def _public_errors(module: ModuleType) -> dict[str, type[BaseException]]:
    """The exception classes ``module`` presents (its ``__all__``, else its public names)."""
    names = getattr(module, "__all__", None) or [name for name in vars(module) if not name.startswith("_")]
    return {name: value for name in names
            if inspect.isclass(value := getattr(module, name)) and issubclass(value, BaseException)}


ALL_ERRORS = {
    **_public_errors(hpsearch.errors),
    **_public_errors(hpsearch.storage),
    **_public_errors(hpsearch.spaces),
}


def test_every_public_error_is_listed_here():
    # A new error class must be given its exit code above, on purpose.
    assert set(ALL_ERRORS) == set(EXPECTED_EXIT_CODES)


@pytest.mark.parametrize("name", sorted(EXPECTED_EXIT_CODES))
def test_error_derives_from_the_root_with_its_exit_code(name):
    error = ALL_ERRORS[name]
    assert issubclass(error, HpsearchError)
    assert error.exit_code == EXPECTED_EXIT_CODES[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_EXIT_CODES))
def test_input_errors_are_value_errors_with_exit_code_2(name):
    error = ALL_ERRORS[name]
    is_input = EXPECTED_EXIT_CODES[name] == 2
    assert issubclass(error, InputError) is is_input
    assert issubclass(error, ValueError) is is_input


def test_storage_errors_keep_their_families():
    # ``except StorageError`` retries a database failure; a trial-write conflict must never land there.
    assert issubclass(hpsearch.storage.StudyNotFoundError, hpsearch.storage.StorageError)
    assert not issubclass(hpsearch.storage.TrialConflictError, hpsearch.storage.StorageError)
    assert issubclass(hpsearch.storage.DuplicateTrialError, hpsearch.storage.TrialConflictError)


def test_errors_module_imports_nothing_of_the_project():
    # It is the bottom of the import graph: storage and spaces derive from it without a cycle.
    tree = ast.parse(inspect.getsource(hpsearch.errors))
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(node) for node in imported] == ["from __future__ import annotations"]


def _one_line(result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def test_cli_storage_error_exit_code(cli):
    result = cli("studies", "--storage", "sqlite:///nothere.db")
    assert result.code == 2
    assert _one_line(result) == "error: no database at nothere.db; run `hpsearch run` first or pass --storage"


def test_cli_not_our_database_exit_code(cli, tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE x (a)")
    result = cli("studies", "--storage", "other.db")
    assert result.code == 2
    assert _one_line(result) == (
        "error: other.db is not an hpsearch database (no hp_studies table); "
        "give the file `hpsearch run` wrote"
    )


def test_cli_space_error_exit_code(cli, tmp_path):
    (tmp_path / "space.yaml").write_text("params:\n  dropout: {type: float, low: 0.5, high: 0.2}\n")
    result = cli("run", "space.yaml", "--quiet")
    assert result.code == 2
    assert _one_line(result) == (
        "error: space.yaml: parameter 'dropout': `low` must be < `high`, but got low=0.5, high=0.2"
    )


def test_cli_data_error_exit_code(cli, tiny_space, tmp_path):
    (tmp_path / "bad.csv").write_text("a,b,label\n")
    result = cli("run", tiny_space, "--data", "bad.csv", "--target", "label", "--quiet")
    assert result.code == 2
    assert _one_line(result) == "error: bad.csv: the file has a header but no data rows"


def test_cli_reports_a_trial_conflict_as_its_sentence(cli, monkeypatch):
    # Internal between store and runner, but one that escapes is the user's sentence, exit 1, as before.
    import hpsearch.cli

    def conflict(args, out):
        raise hpsearch.storage.DuplicateTrialError(3, "complete")

    monkeypatch.setitem(hpsearch.cli._COMMANDS, "studies", conflict)
    result = cli("studies")
    assert result.code == 1
    assert _one_line(result) == "error: the same configuration is trial #3 (complete)"


def test_cli_marks_an_error_outside_the_root_unexpected(cli, monkeypatch):
    import hpsearch.cli

    def bug(args, out):
        raise KeyError("x")

    monkeypatch.setitem(hpsearch.cli._COMMANDS, "studies", bug)
    result = cli("studies")
    assert result.code == 1
    assert _one_line(result) == "error: unexpected KeyError: 'x' (rerun with --debug for details)"
