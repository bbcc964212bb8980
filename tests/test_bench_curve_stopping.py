"""``scripts/bench_curve_stopping.py`` on a sliver of LCBench: the report's structure, never its numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LCBENCH = ROOT.parent / "shared" / "benchmarks" / "lcbench"


@pytest.mark.skipif(not (LCBENCH / "model.onnx").exists(), reason="the LCBench surrogate is not here")
def test_the_curve_stopping_report_has_a_row_per_rule(tmp_path):
    pytest.importorskip("onnxruntime")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_curve_stopping.py"), "--tasks", "1",
                           "--seeds", "1", "--trials", "8", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "curve-stopping.json").read_text())
    (table,) = result["tables"]
    assert [row[0] for row in table["rows"]] == ["curve", "median", "asha"]
    assert all(len(row) == len(table["columns"]) == 5 for row in table["rows"])
    assert all(0 <= row[1] <= 100 for row in table["rows"]), "epochs trained are a share of all epochs"
    assert "bench_curve_stopping.py" in result["command"]
