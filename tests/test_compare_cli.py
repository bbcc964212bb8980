"""``hpsearch compare``: studies side by side, with the retrained test metrics where there are some."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import hpsearch_command


@pytest.mark.slow
def test_compare_two_optuna_samplers_and_a_retrain(cli, tiny_space, tmp_path, db_url):
    search = ("--data", "iris", "--trials", "2", "--quiet", "--pruner", "none")
    result = cli("run", tiny_space, *search, "--algorithm", "tpe", "--study", "tpe-study", "--in-process")
    assert result.code == 0, result.err
    # The second study from another process, as a second user would run it.
    other = subprocess.run(
        hpsearch_command("run", tiny_space, *search, "--algorithm", "random", "--study", "random-study",
                         "--storage", db_url),
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert other.returncode == 0, other.stderr

    text = cli("compare", "tpe-study", "random-study")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0].split()[:3] == ["study", "engine", "algorithm"]
    assert lines[1].split()[:3] == ["tpe-study", "optuna", "tpe"]
    assert lines[2].split()[:3] == ["random-study", "optuna", "random"]
    assert "not directly comparable" in text.out

    rows = json.loads(cli("compare", "tpe-study", "random-study", "--json").out)
    assert [row["study"] for row in rows] == ["tpe-study", "random-study"]
    assert [row["algorithm"] for row in rows] == ["tpe", "random"]
    for row in rows:
        assert row["engine"] == "optuna" and row["states"]["COMPLETE"] == 2 and row["trials"] == 2
        assert row["epochs_total"] == 6 and row["seconds_total"] > 0
        assert row["best_value"] is not None and row["retrained"] is None

    assert cli("retrain", "tpe-study", "--epochs", "3", "--quiet").code == 0
    rows = json.loads(cli("compare", "tpe-study", "random-study", "--json").out)
    retrained = rows[0]["retrained"]
    assert retrained["best_config"] is True and retrained["trial"] == rows[0]["best_trial"]
    assert set(retrained["test_metrics"]) >= {"loss", "accuracy"}
    assert rows[1]["retrained"] is None
    tpe_line = cli("compare", "tpe-study", "random-study").out.splitlines()[1]
    assert f"accuracy={retrained['test_metrics']['accuracy']:.4g}" in tpe_line


def test_unknown_study_is_named(cli, db_url):
    from hpsearch.storage import open_storage

    open_storage(db_url).create_study("known", engine="optuna", algorithm="tpe", objective="val_accuracy",
                                      direction="maximize", space={}, dataset={}, settings={}, versions={})
    assert cli("compare", "known").code == 0  # a study without trials is a row of zeros
    result = cli("compare", "known", "missing-one")
    assert result.code == 2
    assert "'missing-one'" in result.err and "known" in result.err and "Traceback" not in result.err
