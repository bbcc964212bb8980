"""The Python API (``hpsearch.run``, ``load_study``, ``list_studies``, ``Study``): the same studies as the
CLI, in the same store, resumable from either side; errors as ``ValueError`` sentences; a notebook's
interrupt leaves the study resumable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_SPACE, query

#: A fresh process making a study from a DataFrame, as the issue's "done when" does.
DONE_WHEN = """\
import json, sys
import hpsearch
from sklearn.datasets import load_iris

df = load_iris(as_frame=True).frame.rename(columns={"target": "y"})
s = hpsearch.run("default", df, target="y", trials=4, storage=sys.argv[1], study="frame", progress=False,
                 pruner="none")
frame = s.trials_dataframe()
print(json.dumps({"rows": len(frame), "states": sorted(set(frame["state"])),
                  "params": sorted(c for c in frame.columns if c.startswith("params_")),
                  "best": s.best_trial.number, "value": s.best_value}))
"""


def _python(code: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_dataframe_study_from_python_is_the_clis_study_and_resumes_from_python(cli, db_url, tmp_path,
                                                                                   capsys):
    import hpsearch

    made = _python(DONE_WHEN, db_url, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout.strip().splitlines()[-1])
    assert result["rows"] == 4
    assert result["states"] == ["COMPLETE"]
    assert "params_n_neurons" in result["params"] and "params_learning_rate" in result["params"]

    # The shell sees the same study and the same best trial.
    best = cli("best", "frame", "--json")
    assert best.code == 0, best.err
    shown = json.loads(best.out)
    assert (shown["number"], shown["value"]) == (result["best"], pytest.approx(result["value"]))

    capsys.readouterr()
    study = hpsearch.load_study("frame", storage=db_url).resume(trials=6, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "", "progress=False prints nothing"
    frame = study.trials_dataframe()
    assert list(frame["number"]) == list(range(6))
    assert set(frame["state"]) == {"COMPLETE"}
    assert frame["value"].notna().all() and (frame["duration"].dt.total_seconds() > 0).all()
    assert {"metrics_val_accuracy", "metrics_val_loss"} <= set(frame.columns)
    assert study.best_value == max(frame["value"])
    assert study.best_params == study.best_trial.params

    # Epoch curves, the CLI's compare and plot, and a short repr, all from the same rows.
    curves = study.curves()
    assert curves.index.name == "epoch" and len(curves) == study.best_trial.epochs_run
    assert curves["val_accuracy"].iloc[-1] == pytest.approx(study.best_trial.metrics["val_accuracy"])
    compared = study.compare()
    assert compared.loc["frame", "trials"] == 6
    assert compared.loc["frame", "best_trial"] == study.best_trial.number
    figure = study.plot_history()
    assert type(figure).__name__ == "Figure" and len(figure.axes) == 2
    assert repr(study).startswith("<Study 'frame': optuna/tpe, 6 trials (6 complete), best val_accuracy=")
    listed = hpsearch.list_studies(db_url)
    assert list(listed["name"]) == ["frame"] and listed.loc[0, "complete"] == 6


INTERRUPTED = """\
import sys
import hpsearch

space = {"objective": "val_accuracy", "params": {"n_neurons": {"type": "int", "low": 8, "high": 32}},
         "fixed": {"n_hidden": 1, "epochs": 12, "batch_size": 32}}
hpsearch.run(space, "digits", trials=30, storage=sys.argv[1], study="stopped", progress=False, pruner="none")
"""


def test_a_keyboard_interrupt_leaves_the_study_resumable(db_url, tmp_path):
    import hpsearch

    db = Path(db_url.removeprefix("sqlite:///"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTED, db_url], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        completed = 0
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            if db.exists():
                try:
                    completed = query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0]
                except Exception:  # noqa: BLE001 - the tables may not exist yet
                    completed = 0
            if completed >= 1:
                break
        assert completed >= 1, "no trial completed before the interrupt"
        process.send_signal(signal.SIGINT)  # what a notebook's interrupt button sends the kernel
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "KeyboardInterrupt" in err or "SearchInterrupted" in err
    assert "hpsearch resume stopped" in err, "the interrupt carries the command that resumes the study"
    done = query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'COMPLETE'")[0][0]
    assert done >= completed
    assert query(db, "SELECT COUNT(*) FROM hp_trials WHERE state = 'RUNNING'") == [(0,)]

    study = hpsearch.load_study("stopped", storage=db_url).resume(trials=done + 1, progress=False)
    frame = study.trials_dataframe()
    assert (frame["state"] == "COMPLETE").sum() == done + 1, "the completed trials were kept"


def test_bad_input_from_python_is_a_value_error_with_the_clis_sentence(db_url, tmp_path):
    import hpsearch
    import pandas as pd
    from hpsearch.errors import InputError

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 20, "y": [0, 1, 0] * 20})
    with pytest.raises(ValueError, match="target") as missing:
        hpsearch.run("default", frame, target="label", storage=db_url, progress=False)
    assert isinstance(missing.value, InputError) and "label" in str(missing.value)
    with pytest.raises(ValueError, match="unknown option 'folds'; the engine options are cv, jobs"):
        hpsearch.run("default", "iris", storage=db_url, folds=3)
    with pytest.raises(ValueError, match=r"validation= and test= hold out rows of in-memory data"):
        hpsearch.run("default", "iris", storage=db_url, validation=frame)
    with pytest.raises(ValueError, match="n_neurons"):
        hpsearch.run({"params": {"n_neurons": {"type": "int", "low": 9, "high": 2}}}, "iris", storage=db_url)
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        hpsearch.run("default", "iris", storage=db_url, workers=0)
    with pytest.raises(ValueError, match="drop= takes column names"):
        hpsearch.run("default", frame, target="y", storage=db_url, drop=["a", ""])
    assert not Path(db_url.removeprefix("sqlite:///")).exists(), "a refusal creates no database"


def test_import_hpsearch_and_query_studies_do_not_load_tensorflow(tmp_path, db_url):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    code = (
        "import sys, hpsearch\n"
        "print(sorted(hpsearch.__all__))\n"
        "frame = hpsearch.list_studies(sys.argv[1])\n"
        "try:\n"
        "    hpsearch.load_study('nothing', storage=sys.argv[1])\n"
        "except ValueError as error:\n"
        "    print('REFUSED', error)\n"
        "print('HEAVY', [m for m in ('tensorflow', 'keras', 'optuna', 'sklearn') if m in sys.modules])\n"
    )
    from hpsearch.storage import open_storage

    open_storage(db_url)  # an empty store
    result = _python(code, db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "['Retrained', 'Study', 'list_studies', 'load_study', 'run']" in result.stdout
    assert "REFUSED" in result.stdout and "nothing" in result.stdout
    assert "HEAVY []" in result.stdout


def test_progress_draws_a_bar_in_a_notebook_whose_stderr_is_no_terminal(monkeypatch, capsys):
    from hpsearch import progress

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.ProgressBar(total=3, initial=0, objective="val_accuracy", direction="maximize", best=None)
    assert bar._bar is not None, "a notebook gets tqdm.auto's bar even though stderr is not a terminal"
    bar.close()
    silent = progress.ProgressBar(total=3, initial=0, objective="val_accuracy", direction="maximize",
                                  best=None, enabled=False)
    assert silent._bar is None
    monkeypatch.undo()
    assert progress.in_notebook() is False, "a pytest process is not a Jupyter kernel"


def _small_dense(params, info):
    """A model function of the test's own: one hidden layer of ``units`` neurons."""
    import keras

    return keras.Sequential([keras.layers.Input(info.input_shape),
                             keras.layers.Dense(params["units"], activation="relu"),
                             keras.layers.Dense(info.output_units, activation=info.output_activation)])


def test_a_model_function_passed_from_python_trains_every_trial(db_url):
    import hpsearch
    import hpsearch.spaces

    if not hasattr(hpsearch.spaces, "function_reference"):
        pytest.skip("this build has no model functions (issue 40, item 2)")
    space = {"objective": "val_accuracy", "params": {"units": {"type": "int", "low": 4, "high": 12}},
             "fixed": {"epochs": 2, "batch_size": 64}}
    study = hpsearch.run(space, "iris", model=_small_dense, trials=2, storage=db_url, study="own",
                         in_process=True, progress=False, pruner="none")
    frame = study.trials_dataframe()
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE"]
    assert frame["params_units"].between(4, 12).all()
    assert study.record.space["model"] == f"{__name__}:_small_dense"
