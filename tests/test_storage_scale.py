"""A store that keeps up: on a 100k-trial study, `best` and `trials --limit 10` do about the same work as
on a 1k-trial study. Work is counted in SQLite virtual-machine steps (deterministic), never timed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hpsearch.cli import main
from sqlalchemy import Engine, event

from tests.store_fill import fill_study

pytestmark = pytest.mark.slow

#: SQLite calls the progress handler every this many virtual-machine instructions.
_STEP = 10


def _work(command: list[str]) -> tuple[int, str]:
    """(SQLite VM instructions / _STEP, stdout) of one in-process hpsearch command."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    def on_connect(dbapi_connection, record) -> None:
        dbapi_connection.set_progress_handler(tick, _STEP)

    event.listen(Engine, "connect", on_connect)
    try:
        out, err = io.StringIO(), io.StringIO()
        assert main(command, out=out, err=err) == 0, err.getvalue()
    finally:
        event.remove(Engine, "connect", on_connect)
    return count[0], out.getvalue()


def test_queries_on_100k_trials_cost_what_they_cost_on_1k(tmp_path: Path) -> None:
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    fill_study(small, "s", 1_000)
    fill_study(large, "s", 100_000)
    for args in (["best", "s"], ["trials", "s", "--limit", "10"], ["trials", "s", "--limit", "10",
                                                                   "--sort", "value"]):
        work_small, out_small = _work([*args, "--storage", str(small)])
        work_large, out_large = _work([*args, "--storage", str(large)])
        assert out_small and out_large
        assert work_large <= 1.5 * work_small, f"{args}: {work_large} vs {work_small} (x{_STEP} steps)"
    # The counts themselves: `trials --limit 10` lists exactly ten of the 100k.
    _, listed = _work(["trials", "s", "--limit", "10", "--json", "--storage", str(large)])
    import json

    trials = json.loads(listed)
    assert [t["number"] for t in trials] == list(range(10)) and len(trials[0]["curves"]["loss"]) == 3
