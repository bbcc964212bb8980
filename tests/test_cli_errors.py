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
    from hpsearch.storage import open_storage

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
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "dup", "--quiet",
               "--in-process").code == 0
    result = cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "dup", "--quiet")
    assert result.code == 2
    assert "already exists" in _one_sentence(result) and "resume" in result.err
    # The worker started early (to import while the run set up) is not left behind by the refusal.
    assert not _live_workers()
    again = cli("run", tiny_space, "--data", "iris", "--trials", "2", "--study", "dup", "--quiet", "--resume")
    assert again.code == 0, again.err


def test_resume_refuses_changed_space_engine_or_data(cli, tmp_path, tiny_space):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(60)))
    assert cli("run", tiny_space, "--data", csv, "--target", "y", "--trials", "1", "--study", "r",
               "--quiet", "--in-process").code == 0
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
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "v", "--quiet",
               "--in-process").code == 0
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
    assert cli("run", tiny_space, "--data", "iris", "--trials", "1", "--study", "u", "--quiet",
               "--in-process").code == 0
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
    result = cli("run", "--engine", "keras-tuner", "--pack", "4", "--dry-run")
    assert result.code == 2 and "--pack does not apply to engine 'keras-tuner'" in _one_sentence(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--timeout", "nan"), "--timeout must be a positive, finite number of seconds, but got nan"),
        (("--timeout", "inf"), "--timeout must be a positive, finite number of seconds, but got inf"),
        (("--timeout", "-1"), "--timeout must be a positive, finite number of seconds, but got -1.0"),
        (("--trials", "0"), "--trials must be at least 1, but got 0"),
        (("--trials", "-3"), "--trials must be at least 1, but got -3"),
        (("--max-worker-memory", "nan"), "--max-worker-memory must be a positive number of MiB, but got nan"),
        (("--stale-after", "0"), "--stale-after must be a positive, finite number of seconds, but got 0.0"),
        (("--pack", "0"), "--pack must be a whole number of at least 1, but got 0"),
    ],
    ids=["timeout-nan", "timeout-inf", "timeout-negative", "trials-0", "trials-negative", "memory-nan",
         "stale-after-0", "pack-0"],
)
def test_bad_numbers_are_refused_before_anything_is_created(cli, tiny_space, args, expected):
    result = cli("run", tiny_space, "--data", "iris", "--study", "n", "--quiet", *args)
    assert result.code == 2
    assert _one_sentence(result) == f"error: {expected}"
    assert cli("studies", "--json").out.strip() in ("[]", ""), "no study is created"


def test_bad_numbers_on_resume_do_not_reach_the_study(cli, tiny_space):
    assert cli("run", tiny_space, "--data", "iris", "--study", "r", "--trials", "1", "--quiet",
               "--in-process").code == 0
    for args, expected in ((("--trials", "0"), "--trials must be at least 1"),
                           (("--timeout", "nan"), "--timeout must be a positive, finite number"),
                           (("--max-failures", "0"), "--max-failures must be at least 1")):
        result = cli("resume", "r", "--quiet", *args)
        assert result.code == 2 and expected in _one_sentence(result)
    [study] = __import__("json").loads(cli("studies", "--json").out)
    assert study["settings"]["trials"] == 1 and study["settings"]["max_failures"] == 5


def test_space_file_that_is_not_utf8(cli, tmp_path):
    space = tmp_path / "latin1.yaml"
    space.write_bytes("objective: val_accuracy\nparams:\n  n_neurons: {type: int, low: 4, high: 8}\n"
                      "# r\xe9seau\n".encode("latin-1"))
    result = cli("run", space, "--data", "iris", "--study", "u", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "latin1.yaml" in message and "is not UTF-8 text (byte 0xe9" in message


def test_csv_file_that_is_not_utf8(cli, tmp_path, tiny_space):
    csv = tmp_path / "latin1.csv"
    rows = "".join(f"{i},{i % 2}\n" for i in range(40))
    csv.write_bytes(("taille,label\n" + rows + "caf\xe9,1\n").encode("latin-1"))
    result = cli("run", tiny_space, "--data", csv, "--target", "label", "--study", "u", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "latin1.csv: the file is not UTF-8 text (byte 0xe9" in message


def test_resume_applies_or_refuses_every_changed_option(cli, tiny_space):
    import json

    assert cli("run", tiny_space, "--data", "iris", "--study", "c", "--trials", "1", "--seed", "1",
               "--quiet", "--in-process").code == 0
    # Options that decide what the trials mean are refused, named with both values.
    for args, named in ((("--seed", "2"), "--seed (study: 1, given: 2)"),
                        (("--class-weight", "balanced"), "--class-weight (study: None, given: balanced)"),
                        (("--task", "binary"), "--task (study: multiclass, given: binary)")):
        for command in (("resume", "c"), ("run", tiny_space, "--data", "iris", "--study", "c", "--resume")):
            result = cli(*command, "--quiet", "--in-process", *args)
            assert result.code == 2, result.err
            assert named in _one_sentence(result)
    result = cli("resume", "c", "--quiet", "--cv", "4")
    assert result.code == 2 and "--cv does not apply to engine 'optuna'" in _one_sentence(result)
    # Options a resume may change are applied and recorded.
    result = cli("run", tiny_space, "--data", "iris", "--study", "c", "--resume", "--seed", "1",
                 "--trials", "2", "--max-failures", "3", "--pruner", "none", "--stale-after", "30", "--quiet",
                 "--pack", "2", "--in-process")
    assert result.code == 0, result.err
    assert "settings updated" in result.out
    [study] = json.loads(cli("studies", "--json").out)
    settings = study["settings"]
    assert (settings["trials"], settings["max_failures"], settings["pruner"], settings["stale_after_s"],
            settings["seed"], settings["pack"]) == (2, 3, "none", 30.0, 1, 2)
    assert study["trials"] == 2


def _live_workers() -> list:
    """This process's worker children still running (a dismissed one is waited for, so it is gone)."""
    import psutil

    return [child for child in psutil.Process().children(recursive=True)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
            and "hpsearch.worker" in " ".join(child.cmdline())]
