"""The examples in ``examples/`` run as a user runs them: as scripts, from a folder of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, query


def _run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    env.pop("HPSEARCH_STORAGE", None)  # the example's own default: hpsearch.db in the current folder
    return subprocess.run([sys.executable, str(REPO / "examples" / name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_dataframe_search_example(tmp_path: Path) -> None:
    result = _run_example("dataframe_search.py", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The default pruner (hyperband) may stop a poor trial after its first epochs: 3 trials, none failed.
    states = dict(query(tmp_path / "hpsearch.db", "SELECT state, COUNT(*) FROM hp_trials GROUP BY state"))
    assert sum(states.values()) == 3 and set(states) <= {"COMPLETE", "PRUNED"} and states.get("COMPLETE")
    model = tmp_path / "models" / "wine" / "model.keras"
    assert model.is_file() and (model.parent / "model.json").is_file()
    assert "best params: {" in result.stdout and "test metrics: {'accuracy'" in result.stdout

    # The rows the example predicted, predicted again by the shell's `hpsearch predict` from the files.
    from sklearn.datasets import load_wine

    rows = load_wine(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    shell = subprocess.run([str(Path(sys.executable).with_name("hpsearch")), "predict", str(model),
                            "rows.csv"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert shell.returncode == 0, shell.stderr
    labels = [line.split(",")[0] for line in shell.stdout.strip().splitlines()[1:]]
    assert len(labels) == 5 and set(labels) <= {"barolo", "grignolino", "barbera"}
    printed = result.stdout[result.stdout.index("prediction  probability_"):].splitlines()[1:6]
    assert [line.split()[1] for line in printed] == labels, "Python and the shell predict alike"
