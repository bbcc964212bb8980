"""Bad input: one clear sentence naming the file, field or column, exit code 2, no traceback."""

from __future__ import annotations

import sqlite3

import pytest


def _one_sentence(result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("a,b,label\n", "no data rows"),
        ("a,b,label\n" + "".join(f"{i},{i * 2},yes\n" for i in range(30)), "2 classes"),
        ("a,b,other\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(30)), "'label'"),
        ("a,b,label\n" + "".join(f"id-{i},{i},{i % 2}\n" for i in range(120)), "'a'"),
    ],
    ids=["empty-file", "header-only", "one-class", "missing-target", "free-text-column"],
)
def test_bad_csv_is_refused_before_training(cli, tmp_path, tiny_space, content, expected):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    result = cli("run", tiny_space, "--data", csv, "--target", "label", "--study", "b", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "bad.csv" in message and expected in message
    assert cli("studies", "--json").out.strip() in ("[]", ""), "nothing is created for bad input"


def test_bad_space_file_names_file_and_parameter(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  dropout: {type: float, low: 0.5, high: 0.2}\n")
    result = cli("run", space, "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "space.yaml" in message and "dropout" in message and "low" in message


def test_unknown_parameter_is_an_error(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  n_neuron: {type: int, low: 1, high: 3}\n")
    message = _one_sentence(cli("run", space, "--quiet"))
    assert "n_neuron" in message and "n_neurons" in message


def test_objective_must_fit_the_task(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("objective: val_accuracy\nparams:\n  n_neurons: {type: int, low: 4, high: 8}\n")
    result = cli("run", space, "--data", "diabetes", "--quiet")
    assert result.code == 2
    assert "val_accuracy" in _one_sentence(result)


def test_unknown_dataset_and_study(cli, db_url):
    from storage import open_storage

    result = cli("run", "--data", "mnist", "--dry-run")
    assert result.code == 2 and "digits" in _one_sentence(result)
    open_storage(db_url).close()
    result = cli("best", "nope")
    assert result.code == 2 and "nope" in _one_sentence(result)


def test_grid_sampler_needs_finite_space(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  learning_rate: {type: float, low: 0.001, high: 0.1, log: true}\n")
    result = cli("run", space, "--algorithm", "grid", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "learning_rate" in message and "grid" in message


def test_existing_study_name_is_refused_without_resume(cli, tiny_space):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "dup", "--quiet").code == 0
    result = cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "dup", "--quiet")
    assert result.code == 2
    assert "already exists" in _one_sentence(result) and "resume" in result.err
    again = cli("run", tiny_space, "--data", "iris", "--trials", "2", "--study", "dup", "--quiet", "--resume")
    assert again.code == 0, again.err


def test_resume_refuses_changed_space_engine_or_data(cli, tmp_path, tiny_space):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(60)))
    assert cli("run", tiny_space, "--data", csv, "--target", "y", "--trials", "1", "--study", "r",
               "--quiet").code == 0
    other = tmp_path / "other.yaml"
    other.write_text(tiny_space.read_text().replace("high: 16", "high: 32"))
    result = cli("resume", "r", "--space", other)
    assert result.code == 2 and "search space" in _one_sentence(result) and "n_neurons" in result.err
    result = cli("run", other, "--data", csv, "--target", "y", "--study", "r", "--resume", "--quiet")
    assert result.code == 2 and "n_neurons" in _one_sentence(result)
    result = cli("resume", "r", "--data", "iris")
    assert result.code == 2 and "data" in _one_sentence(result)
    csv.write_text(csv.read_text().replace("0.5,1", "0.5,0"))
    result = cli("resume", "r", "--trials", "2")
    assert result.code == 2
    message = _one_sentence(result)
    assert "d.csv" in message and "changed" in message


def test_database_that_is_not_a_database(cli, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    result = cli("studies", "--storage", bogus)
    assert result.code == 2 and "not an SQLite database" in _one_sentence(result)


def test_database_from_a_newer_schema_is_refused(cli, tiny_space, tmp_path, db_url):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "v", "--quiet").code == 0
    connection = sqlite3.connect(tmp_path / "hp.db")
    connection.execute("UPDATE hp_alembic_version SET version_num = 'ffff_from_the_future'")
    connection.commit()
    connection.close()
    result = cli("studies")
    assert result.code == 2 and "newer version of hpsearch" in _one_sentence(result)


def test_missing_database_for_queries(cli, tmp_path):
    result = cli("studies", "--storage", tmp_path / "absent.db")
    assert result.code == 2 and "absent.db" in _one_sentence(result)


def test_db_upgrade(cli, tiny_space, tmp_path):
    result = cli("db", "upgrade", "--storage", tmp_path / "absent.db")
    assert result.code == 2 and "absent.db" in _one_sentence(result)
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "u", "--quiet").code == 0
    result = cli("db", "upgrade")
    assert result.code == 0, result.err
    assert "already at schema revision" in result.out


def test_debug_shows_traceback(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params: [")
    result = cli("--debug", "run", space)
    assert result.code == 2 and "Traceback" in result.err


def test_options_of_another_engine_are_refused(cli):
    result = cli("run", "--engine", "optuna", "--cv", "5", "--dry-run")
    assert result.code == 2 and "--cv does not apply to engine 'optuna'" in _one_sentence(result)
    for engine in ("sklearn", "keras-tuner"):
        result = cli("run", "--engine", engine, "--pruner", "none", "--dry-run")
        assert result.code == 2 and f"--pruner does not apply to engine '{engine}'" in _one_sentence(result)
    result = cli("run", "--engine", "sklearn", "--max-epochs", "9", "--dry-run")
    assert result.code == 2 and "--max-epochs does not apply to engine 'sklearn'" in _one_sentence(result)
