"""Plain helpers the test files share (fixtures stay in conftest.py): reading trial rows, running the
installed CLI in a subprocess or in this process, and writing the small search spaces the tests use.

Imported as ``from tests.helpers import ...``, as the tests import conftest's helpers (pyproject's
``pythonpath = ["."]`` puts the repository root on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import CliResult, hpsearch_command, query

#: The columns every ``trial_rows`` row starts with, so a test indexes them alike whatever it adds:
#: row[0] number, row[1] state, row[2] interrupted, row[3] retry_of, row[4] params (JSON text).
TRIAL_COLUMNS = ("number", "state", "interrupted", "retry_of", "params")

#: Enough epochs (digits, batch 32) that a trial is still training when a test kills its process.
SLOW_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 8, high: 32}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
fixed: {n_hidden: 1, epochs: 12, batch_size: 32}
"""


def trial_rows(db: Path, *extra_columns: str) -> list[tuple]:
    """Every trial of the SQLite file ``db``, read with the sqlite3 module, ordered by number.

    Args:
        db: the SQLite file.
        extra_columns: ``hp_trials`` columns wanted after ``TRIAL_COLUMNS``, in this order.

    Returns:
        One tuple per trial: ``TRIAL_COLUMNS`` then ``extra_columns``.
    """
    columns = ", ".join((*TRIAL_COLUMNS, *extra_columns))
    return query(db, f"SELECT {columns} FROM hp_trials ORDER BY number")


def assert_budget_reached_cleanly(
    rows: list[tuple], budget: int, *, optuna_db: Path | None = None
) -> list[tuple]:
    """Assert that a study's trials (``trial_rows`` rows) end as a finished search must leave them.

    Numbers are unique and gap-free, no trial is left RUNNING, and the trials that were not interrupted
    number exactly ``budget``. With ``optuna_db``, Optuna's own table in that file has nothing RUNNING
    either (the optuna engine's studies). Returns ``rows``, for the test's further checks.
    """
    assert [row[0] for row in rows] == list(range(len(rows))), "trial numbers must be unique and gap-free"
    assert not [row for row in rows if row[1] == "RUNNING"], "no trial may stay RUNNING"
    assert len([row for row in rows if not row[2]]) == budget, "the study reached its budget"
    if optuna_db is not None:
        assert query(optuna_db, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'") == [(0,)]
    return rows


def run_hpsearch(
    cwd: Path, *args: object, check: bool = True, timeout: int = 600, env: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.CompletedProcess:
    """Run the installed ``hpsearch ARGS`` in ``cwd`` and wait for it, output captured as text.

    Args:
        cwd: the working directory (a test's tmp_path).
        args: the command line after ``hpsearch``.
        check: assert that it exited 0 (its stderr is the assertion's message).
        timeout: seconds before subprocess.TimeoutExpired.
        env: variables set on top of this process's environment.
        popen: further ``subprocess.run`` arguments.

    Returns:
        The finished process.
    """
    environment = None if env is None else {**os.environ, **env}
    done = subprocess.run(hpsearch_command(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=environment, **popen)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def run_in_process(cli, engine: str, space: Path, *args: object) -> CliResult:
    """``hpsearch run SPACE --engine ENGINE --quiet --in-process ARGS`` through the ``cli`` fixture."""
    return cli("run", space, "--engine", engine, "--quiet", "--in-process", *args)


def write_space(folder: Path, text: str, name: str = "space.yaml") -> Path:
    """Write a search space's YAML ``text`` to ``folder/name`` and return that path."""
    path = folder / name
    path.write_text(text)
    return path


def grid_space(
    n_neurons: Sequence[int], learning_rates: Sequence[float], *, epochs: int, batch_size: int
) -> str:
    """A grid space's YAML: every ``n_neurons`` with every ``learning_rates``, one hidden layer.

    Args:
        n_neurons: the categorical choices of the hidden layer's width.
        learning_rates: the categorical choices of the learning rate.
        epochs: the fixed epochs of every candidate.
        batch_size: the fixed batch size.

    Returns:
        The space's text, objective val_accuracy.
    """
    return (
        "objective: val_accuracy\n"
        "params:\n"
        f"  n_neurons: {{type: categorical, choices: [{', '.join(map(str, n_neurons))}]}}\n"
        f"  learning_rate: {{type: categorical, choices: [{', '.join(map(str, learning_rates))}]}}\n"
        f"fixed: {{n_hidden: 1, epochs: {epochs}, batch_size: {batch_size}}}\n"
    )
