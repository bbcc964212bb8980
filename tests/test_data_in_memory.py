"""Data given in memory (a DataFrame, arrays): kept in the study's database, reloaded from there by a
resume in worker processes, a retrain, or another machine; no file appears beside the database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hpsearch.data import in_memory_data, load_dataset
from hpsearch.errors import DataError
from hpsearch.storage import open_storage
from hpsearch.study import resume_study, run_study
from hpsearch.study_options import Isolation, RunOptions

from tests.conftest import query


def _wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = [f"c{int(v)}" for v in frame.pop("target")]
    return frame


def test_dataframe_study_resumes_in_worker_processes(cli, tmp_path: Path, tiny_space: Path) -> None:
    frame = _wine_frame()
    data = in_memory_data(frame, target="cultivar")
    url = f"sqlite:///{tmp_path / 'hp.db'}"
    out = io.StringIO()
    study = run_study(RunOptions(space=str(tiny_space), data=data, trials=2, storage=url, progress=False,
                                 pruner="none", isolation=Isolation(in_process=True)), out)
    assert study is not None
    assert study.name.startswith("dataframe-optuna-")
    shown = "DataFrame (178 rows x 14 columns): 178 rows, 13 features, multiclass (3 classes)"
    assert shown in out.getvalue()
    assert study.dataset["kind"] == "stored" and study.dataset["key"] == data.key
    # The content sits in the database, not in a file the user would have to keep.
    assert query(tmp_path / "hp.db", "SELECT format FROM hp_stored_data") == [("csv.gz",)]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("hp.db")) == ["tiny.yaml"]

    # Worker processes know only the study's name and database: they read the data from there.
    resumed = resume_study(study.name, url, trials=4, progress=False, isolation=Isolation(workers=1),
                           out=io.StringIO())
    states = query(tmp_path / "hp.db", "SELECT state FROM hp_trials ORDER BY number")
    assert [s for (s,) in states] == ["COMPLETE"] * 4
    assert resumed.dataset["key"] == data.key

    # The same frame given again is the same data; another frame is refused on resume.
    run_study(RunOptions(space=str(tiny_space), data=in_memory_data(frame, target="cultivar"),
                         study=study.name, resume=True, storage=url, progress=False,
                         isolation=Isolation(in_process=True)), io.StringIO())
    with pytest.raises(ValueError, match="different data"):
        run_study(RunOptions(space=str(tiny_space), data=in_memory_data(frame.iloc[:150], target="cultivar"),
                             study=study.name, resume=True, storage=url, progress=False,
                             isolation=Isolation(in_process=True)), io.StringIO())
    with open_storage(url) as storage:
        assert len(query(tmp_path / "hp.db", "SELECT key FROM hp_stored_data")) == 1, "stored once"
        fmt, payload = storage.get_data(data.key)
        assert fmt == "csv.gz" and payload == data.payload

    # The shell's retrain reads the same rows from the database.
    retrained = cli("retrain", study.name, "--epochs", "2", "--quiet")
    assert retrained.code == 0, retrained.err
    [card] = (tmp_path / "models").glob("*/*/model.json")
    described = json.loads(card.read_text())["data"]
    assert described["reference"]["kind"] == "stored" and described["summary"].startswith(shown)


def test_arrays_with_a_validation_split(tmp_path: Path, tiny_space: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_iris

    monkeypatch.chdir(tmp_path)
    x, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    data = in_memory_data((x[:110].tolist(), y[:110]), validation=(x[110:], y[110:]))
    # The validation rows are the ones given: 40 of them, whatever the split fractions.
    dataset = load_dataset(data)
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (88, 40, 22)
    url = f"sqlite:///{tmp_path / 'hp.db'}"
    out = io.StringIO()
    study = run_study(RunOptions(space=str(tiny_space), data=data, trials=2, storage=url, progress=False,
                                 pruner="none", isolation=Isolation(in_process=True)), out)
    assert study.name.startswith("arrays-optuna-")
    assert "arrays (110 rows x 4 columns, validation 40 rows): 150 rows" in out.getvalue()
    values = [v for (v,) in query(tmp_path / "hp.db", "SELECT value FROM hp_trials WHERE state = 'COMPLETE'")]
    assert len(values) == 2
    assert query(tmp_path / "hp.db", "SELECT format FROM hp_stored_data") == [("npz",)]


def test_bad_data_is_refused_naming_the_argument() -> None:
    frame = _wine_frame()
    with pytest.raises(DataError, match=r"^target column 'species' is not in the DataFrame; its columns "):
        in_memory_data(frame, target="species")
    with pytest.raises(DataError, match="data: X is ragged"):
        in_memory_data(([[1.0, 2.0], [3.0]], [0, 1]))
    with pytest.raises(DataError, match=r"validation: X has 3 columns, but the data's X has 2"):
        in_memory_data((np.zeros((20, 2)), np.zeros(20)), validation=(np.zeros((5, 3)), np.zeros(5)))
    with pytest.raises(DataError, match="leave target out"):
        in_memory_data((np.zeros((20, 2)), np.zeros(20)), target="y")
    with pytest.raises(DataError, match="data must be a pandas DataFrame or a tuple"):
        in_memory_data({"X": 1})
    with pytest.raises(DataError, match="HPSEARCH_MAX_DATA_BYTES"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HPSEARCH_MAX_DATA_BYTES", "100")
            in_memory_data(frame, target="cultivar")
