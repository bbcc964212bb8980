"""``run --warm-start``: completed trials of earlier studies seed a new one, whatever engine ran them.

An Optuna study warm-started from a KerasTuner study, and a scikit-learn grid from an earlier, overlapping
grid: what is copied, what is skipped (and why), what the budget counts, and what each engine learns.
"""

from __future__ import annotations

import json
import os

import pytest
from hpsearch.storage import open_storage

#: The KerasTuner source: n_neurons up to 32, so some of its trials lie outside the Optuna space below.
WIDE_SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 4, high: 32}
  activation: {type: categorical, choices: [relu, tanh]}
fixed: {n_hidden: 1, epochs: 1, batch_size: 64}
"""

NARROW_SPACE = WIDE_SPACE.replace("high: 32", "high: 16")

GRID_A = """\
objective: val_accuracy
params:
  n_neurons: {type: int, grid: [4, 8]}
fixed: {n_hidden: 1, epochs: 1, batch_size: 64}
"""

GRID_B = GRID_A.replace("[4, 8]", "[8, 16]")


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _json(cli, *args):
    result = cli(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_optuna_study_warm_started_from_a_keras_tuner_study(cli, tmp_path):
    wide, narrow = _write(tmp_path, "wide.yaml", WIDE_SPACE), _write(tmp_path, "narrow.yaml", NARROW_SPACE)
    source = cli("run", wide, "--engine", "keras-tuner", "--algorithm", "random", "--data", "iris",
                 "--trials", "3", "--study", "kt", "--quiet", "--in-process")
    assert source.code == 0, source.err
    kt = {t["number"]: t for t in _json(cli, "trials", "kt")}
    inside = sorted(n for n, t in kt.items() if t["params"]["n_neurons"] <= 16)
    outside = sorted(n for n, t in kt.items() if t["params"]["n_neurons"] > 16)
    assert inside and outside, "seed 0 draws trials on both sides of n_neurons=16"

    result = cli("run", narrow, "--engine", "optuna", "--data", "iris", "--trials", "3", "--study", "op",
                 "--warm-start", "kt", "--quiet", "--in-process")
    assert result.code == 0, result.err
    # The skipped trials are listed under their reason, each with its value, then one summary line.
    skipped = ", ".join(f"#{number} n_neurons={kt[number]['params']['n_neurons']}" for number in outside)
    noun = "trial" if len(outside) == 1 else "trials"
    assert (f"warm start: study 'kt': {len(outside)} {noun} skipped: n_neurons lies outside the new space's "
            f"range [4, 16] ({skipped})") in result.out
    assert (f"warm start: copied {len(inside)} trials ({len(inside)} from 'kt'); skipped {len(outside)}"
            in result.out)

    trials = _json(cli, "trials", "op")
    copies = [t for t in trials if t["copied_from"] is not None]
    trained = [t for t in trials if t["copied_from"] is None]
    # Copies keep their source's params, value, epochs and curves, and name it.
    assert sorted(t["copied_from"]["number"] for t in copies) == inside
    for copy in copies:
        original = kt[copy["copied_from"]["number"]]
        assert copy["copied_from"]["study"] == "kt" and copy["state"] == "COMPLETE"
        assert (copy["params"], copy["value"], copy["epochs_run"]) == (
            original["params"], original["value"], original["epochs_run"])
        assert copy["curves"] == original["curves"]
    # --trials 3 trains three new trials beyond the copies, none of them a copied configuration again.
    assert len(trained) == 3 and all(t["state"] == "COMPLETE" for t in trained)
    assert not {json.dumps(t["params"], sort_keys=True) for t in trained} & {
        json.dumps(t["params"], sort_keys=True) for t in copies}

    # The sampler learned from them: Optuna's own study holds the copies as COMPLETE trials with values.
    import optuna

    optuna_study = optuna.load_study(study_name="op", storage=os.environ["HPSEARCH_STORAGE"])
    seen = {t.user_attrs["hp_copied_from"]: t for t in optuna_study.trials
            if "hp_copied_from" in t.user_attrs}
    assert sorted(seen) == sorted(f"kt #{number}" for number in inside)
    for number in inside:
        frozen = seen[f"kt #{number}"]
        assert frozen.state == optuna.trial.TrialState.COMPLETE
        assert frozen.value == pytest.approx(kt[number]["value"])
        assert frozen.params == kt[number]["params"]

    # Shown as copies everywhere: the study listing counts them apart, and their epochs cost nothing here.
    [summary] = [s for s in _json(cli, "studies") if s["name"] == "op"]
    assert (summary["trials"], summary["copied"], summary["epochs_total"]) == (
        len(inside) + 3, len(inside), 3)
    assert summary["settings"]["warm_start"] == ["kt"]
    table = cli("trials", "op").out
    assert "copied from" in table and f"kt #{inside[0]}" in table
    compare = _json(cli, "compare", "kt", "op")
    assert compare[1]["copied_trials"] == len(inside)

    # A resume never copies again; the budget of 4 trains exactly one more trial.
    resumed = cli("resume", "op", "--trials", "4", "--quiet", "--in-process")
    assert resumed.code == 0, resumed.err
    again = _json(cli, "trials", "op")
    assert len([t for t in again if t["copied_from"]]) == len(inside)
    assert len([t for t in again if not t["copied_from"]]) == 4
    optuna_study = optuna.load_study(study_name="op", storage=os.environ["HPSEARCH_STORAGE"])
    assert len([t for t in optuna_study.trials if "hp_copied_from" in t.user_attrs]) == len(inside)


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_sklearn_grid_warm_started_from_an_overlapping_grid(cli, tmp_path, monkeypatch):
    grid_a, grid_b = _write(tmp_path, "a.yaml", GRID_A), _write(tmp_path, "b.yaml", GRID_B)
    source = cli("run", grid_a, "--engine", "sklearn", "--cv", "2", "--data", "iris", "--study", "ga",
                 "--quiet", "--in-process")
    assert source.code == 0, source.err
    ga = {t["params"]["n_neurons"]: t for t in _json(cli, "trials", "ga")}

    from hpsearch.training import fold_fitting

    fitted: list[dict] = []
    real_fit = fold_fitting.fit_and_score

    def counting_fit(estimator, params, *args, **kwargs):
        fitted.append(dict(params))
        return real_fit(estimator, params, *args, **kwargs)

    monkeypatch.setattr(fold_fitting, "fit_and_score", counting_fit)
    result = cli("run", grid_b, "--engine", "sklearn", "--cv", "2", "--data", "iris", "--study", "gb",
                 "--warm-start", "ga", "--quiet", "--in-process")
    assert result.code == 0, result.err
    assert (f"study 'ga': 1 trial skipped: n_neurons is not on the new grid [8, 16] (#{ga[4]['number']} "
            "n_neurons=4)") in result.out
    assert "warm start: copied 1 trials (1 from 'ga'); skipped 1" in result.out

    # Only the candidate the earlier grid did not score was fitted, once per fold.
    assert [params["model__n_neurons"] for params in fitted] == [16, 16]
    trials = {t["params"]["n_neurons"]: t for t in _json(cli, "trials", "gb")}
    copy, new = trials[8], trials[16]
    assert copy["copied_from"] == {"study": "ga", "number": ga[8]["number"]}
    fold_scores = {k: v for k, v in copy["metrics"].items() if k.endswith("_test_score")}
    assert fold_scores == {k: v for k, v in ga[8]["metrics"].items() if k.endswith("_test_score")}
    assert {"split0_test_score", "split1_test_score"} <= set(fold_scores)
    assert copy["value"] == ga[8]["value"] and copy["curves"] == ga[8]["curves"]
    assert new["copied_from"] is None and new["state"] == "COMPLETE"

    # The budget of a whole grid is what is left to fit; the copy counts toward neither it nor the epochs.
    [summary] = [s for s in _json(cli, "studies") if s["name"] == "gb"]
    assert (summary["trials"], summary["copied"], summary["settings"]["trials"]) == (2, 1, 1)
    assert summary["epochs_total"] == new["epochs_run"]
    best = _json(cli, "best", "gb", "--top", "2")
    assert {t["number"]: t["copied_from"] for t in best["top"]} == {
        copy["number"]: copy["copied_from"], new["number"]: None}

    # The HTTP API (what the pages show) says the same: the trial's copied_from, and a history whose
    # epochs start at the copy's zero cost.
    from hpsearch.service.app import ServeOptions, create_app
    from starlette.testclient import TestClient

    with TestClient(create_app(ServeOptions(storage=os.environ["HPSEARCH_STORAGE"])),
                    base_url="http://127.0.0.1") as api:
        listed = api.get("/api/studies/gb/trials").json()["trials"]
        assert {t["number"]: t["copied_from"] for t in listed} == {
            copy["number"]: {"study": "ga", "number": ga[8]["number"]}, new["number"]: None}
        points = {p["number"]: p for p in api.get("/api/studies/gb/history").json()["points"]}
        assert points[copy["number"]]["copied"] and not points[new["number"]]["copied"]
        assert points[new["number"]]["epochs"] == new["epochs_run"] * 2  # two folds, the copy free

    # Folds fitted by the other trainer score within noise, not the same: nothing is copied.
    other = cli("run", grid_b, "--engine", "sklearn", "--cv", "2", "--data", "iris", "--study", "gh",
                "--trainer", "hpsearch", "--warm-start", "ga", "--quiet", "--in-process")
    assert other.code == 0, other.err
    assert ("its folds were fitted by --trainer scikeras; this study uses --trainer hpsearch, whose scores "
            "differ") in other.out
    assert not [t for t in _json(cli, "trials", "gh") if t["copied_from"]]

    # Other data: the whole source is refused, naming the fingerprint, and nothing is created.
    refused = cli("run", grid_b, "--engine", "sklearn", "--cv", "2", "--data", "wine", "--study", "gw",
                  "--warm-start", "ga", "--quiet", "--in-process")
    assert refused.code == 2
    assert "--warm-start: study 'ga' differs in data fingerprint" in refused.err
    assert "Traceback" not in refused.err
    assert "gw" not in [s["name"] for s in _json(cli, "studies")]


def test_bad_warm_start_sources_are_refused_before_anything_is_created(cli, tmp_path):
    narrow = _write(tmp_path, "narrow.yaml", NARROW_SPACE)
    with open_storage(os.environ["HPSEARCH_STORAGE"]) as storage:
        # A study of the same data but another objective; its trials would be scored in other units.
        iris = {"source": "iris", "kind": "builtin", "target": None, "task": "multiclass", "seed": 0,
                "test_size": 0.2, "val_size": 0.2, "class_weight": None}
        from hpsearch.data import load_dataset

        storage.create_study("loss", engine="optuna", algorithm="tpe", objective="val_loss",
                             direction="minimize", space={"params": {}}, settings={}, versions={},
                             dataset={**iris, "fingerprint": load_dataset("iris").fingerprint})

    def run(*args):
        return cli("run", narrow, "--data", "iris", "--trials", "1", "--quiet", "--in-process", *args)

    cases = {
        ("--study", "new", "--warm-start", "nope"): "--warm-start: no study 'nope'",
        ("--study", "new", "--warm-start", "new"): "a study cannot be warm-started from itself",
        ("--study", "new", "--warm-start", "loss,"): "--warm-start takes study names separated by commas",
        ("--study", "new", "--warm-start", "loss"): "differs in objective (val_loss, minimize; this study: "
                                                     "val_accuracy, maximize)",
    }
    halving = ("--study", "new", "--engine", "sklearn", "--algorithm", "halving-random", "--warm-start", "x")
    cases[halving] = "--warm-start works with --algorithm grid or random of the sklearn engine, not halving"
    for args, message in cases.items():
        result = run(*args)
        assert result.code == 2, (args, result.err)
        assert message in result.err and "Traceback" not in result.err
    assert [s["name"] for s in _json(cli, "studies")] == ["loss"]
