"""The LCBench efficiency benchmark: a short run writes a report of the expected shape (never its numbers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import lcbench  # noqa: E402

needs_lcbench = pytest.mark.skipif(not lcbench.available(),
                                   reason="the LCBench surrogate or onnxruntime is not installed")

CONTENDERS = ("optuna random", "optuna tpe+median", "plain optuna tpe+hyperband",
              "plain keras-tuner hyperband")


@needs_lcbench
def test_surrogate_fit_reports_every_epoch_of_a_configuration():
    reported = []
    space = lcbench.space(lcbench.dev_tasks()[0], epochs=5)
    params = {name: spec["low"] for name, spec in space["params"].items()} | space["fixed"]
    value = lcbench.fit(params, lambda epoch, **metrics: reported.append((epoch, metrics)))
    assert [epoch for epoch, _ in reported] == [1, 2, 3, 4, 5]
    assert value == reported[-1][1]["val_accuracy"]
    assert all(0.0 <= metrics["val_accuracy"] <= 1.0 for _, metrics in reported)
    times = [metrics["time"] for _, metrics in reported]
    assert times == sorted(times) and times[0] > 0  # seconds of training so far grow epoch by epoch


@needs_lcbench
def test_short_lcbench_run_writes_every_table_and_the_plot(tmp_path, monkeypatch):
    import bench_lcbench

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    bench_lcbench.main(["--tasks", "2", "--seeds", "2", "--trials", "2", "--epochs", "4",
                        "--only", ",".join(CONTENDERS), "--out", str(tmp_path / "out"),
                        "--results-dir", str(results), "--result", "lcbench-test"])
    report = json.loads((results / "lcbench-test.json").read_text())
    assert (results / report["figures"][0]).stat().st_size > 0
    overall, defaults, per_task = report["tables"]
    assert sorted(row[0] for row in overall["rows"]) == sorted(CONTENDERS)
    assert overall["columns"][:4] == ["contender", "mean rank at 25%",
                                      "mean rank (average over budget shares)", "mean rank at 100%"]
    assert [column for column in overall["columns"] if column.startswith("regret at")] == [
        "regret at 10%", "regret at 25%", "regret at 50%", "regret at 100%"]
    # hpsearch's own contenders name a default for their engine; the anchors never do.
    assert [row[0] for row in defaults["rows"]] == ["optuna"]
    assert defaults["rows"][0][1] in ("optuna random", "optuna tpe+median")
    assert len(per_task["rows"]) == 2 * len(CONTENDERS)
    # Every trace stays within its budget (2 trials x 4 epochs), its epochs growing trial by trial.
    traces = bench_lcbench.load_traces(tmp_path / "out" / "traces.jsonl")
    assert len(traces) == 2 * 2 * len(CONTENDERS)
    for record in traces.values():
        epochs = [point[0] for point in record["points"]]
        assert epochs and epochs == sorted(epochs) and epochs[-1] <= 8


@needs_lcbench
def test_an_interrupted_benchmark_reuses_the_runs_it_has(tmp_path, monkeypatch):
    import bench_lcbench

    monkeypatch.chdir(tmp_path)
    args = ["--tasks", "1", "--trials", "2", "--epochs", "3", "--only", "plain optuna tpe+hyperband",
            "--out", str(tmp_path / "out"), "--results-dir", str(tmp_path), "--result", "again"]
    bench_lcbench.main(args)
    bench_lcbench.main(args)
    lines = (tmp_path / "out" / "traces.jsonl").read_text().splitlines()
    # Two runs: the contender and random search, the reference every report needs; each once.
    assert len(lines) == 2


def test_an_unknown_contender_is_refused_by_name(tmp_path):
    import bench_lcbench

    with pytest.raises(SystemExit, match="'optuna magic' is not a contender"):
        bench_lcbench.main(["--only", "optuna magic", "--out", str(tmp_path)])


def test_scale_simulation_reports_each_worker_count_and_the_cpu_per_trial(tmp_path):
    import bench_scale

    bench_scale.main(["--workers", "1,2", "--backends", "sqlite", "--seconds", "0.5", "--epochs", "3",
                      "--modes", "batched", "--results-dir", str(tmp_path), "--result", "scale-test"])
    report = json.loads((tmp_path / "scale-test.json").read_text())
    load, cpu = report["tables"]
    assert [(row[0], row[1], row[2]) for row in load["rows"]] == [("sqlite", "batched", 1),
                                                                   ("sqlite", "batched", 2)]
    assert all(row[3] > 0 for row in load["rows"])  # trials went through the store
    assert cpu["columns"] == ["store", "claim", "epochs", "finish", "memory sampling", "total"]
