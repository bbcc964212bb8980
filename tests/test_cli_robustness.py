"""Smaller defects of the command line, the exported models and the model card reader (issue 38).

Study names (empty, control characters, too long for a file name), shell-quoted printed commands, typed
model cards, ``--state`` repeated, the duration of an abandoned trial, retrains into an ``--out`` that
holds an earlier model, ``predict --out DIR`` and the modes of exported files. One tiny study is trained
once for the module (one trial, three epochs, in this process) and shared by the tests that need it.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import TINY_SPACE, CliResult

#: Spaces, quotes and a dollar sign: a name a shell would split or expand if printed unquoted.
STUDY = "tiny study's $HOME"
LONG_NAME = "long-" + "n" * 495  # 500 characters: longer than a file name may be
#: One xdist worker trains the shared study once (``make test`` uses ``--dist loadgroup``).
pytestmark = pytest.mark.xdist_group("cli-robustness")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Hpsearch:
    """``hpsearch ARGS`` in this process, in one folder and against one database, for a module."""

    def __init__(self, folder: Path, db_url: str) -> None:
        self.folder, self.db_url = folder, db_url

    def __call__(self, *args: object, db_url: str | None = None) -> CliResult:
        from hpsearch.cli import main

        out, err = io.StringIO(), io.StringIO()
        previous = Path.cwd()
        os.chdir(self.folder)
        try:
            code = main([*map(str, args), "--storage", db_url or self.db_url], out=out, err=err)
        finally:
            os.chdir(previous)
        return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Hpsearch, CliResult]:
    """A one-trial study named :data:`STUDY` on the bundled digits data, and its run's output."""
    folder = tmp_path_factory.mktemp("robust")
    (folder / "tiny.yaml").write_text(TINY_SPACE)
    hpsearch = Hpsearch(folder, f"sqlite:///{folder / 'hp.db'}")
    run = hpsearch("run", "tiny.yaml", "--data", "digits", "--trials", "1", "--study", STUDY, "--quiet",
                   "--pruner", "none", "--in-process")
    assert run.code == 0, run.err
    return hpsearch, run


@pytest.fixture(scope="module")
def retrained(trained: tuple[Hpsearch, CliResult]) -> tuple[Hpsearch, Path, CliResult]:
    """The study's best trial retrained (two epochs) into a folder whose name holds a space."""
    hpsearch, _ = trained
    out = hpsearch.folder / "my models" / "best"
    with umask(0o022):
        result = hpsearch("retrain", STUDY, "--epochs", "2", "--patience", "1", "--quiet", "--out", out)
    assert result.code == 0, result.err
    return hpsearch, out, result


def one_line_error(result: CliResult, code: int = 2) -> str:
    assert result.code == code, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err and "unexpected" not in result.err, result.err
    return lines[0]


# -- study names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "   ", "\t", "two\nlines", "bell\x07", "nul\x00"])
def test_an_empty_or_control_character_study_name_is_refused(cli, name):
    # Before: "" and "   " silently became the generated default name; control characters were stored.
    line = one_line_error(cli("run", "--study", name, "--dry-run"))
    assert "--study" in line


def test_a_new_study_name_longer_than_the_limit_is_refused(cli):
    from hpsearch.names import MAX_STUDY_NAME

    line = one_line_error(cli("run", "--study", "x" * (MAX_STUDY_NAME + 1), "--dry-run"))
    assert "--study" in line and f"at most {MAX_STUDY_NAME} characters" in line
    assert cli("run", "--study", "x" * MAX_STUDY_NAME, "--dry-run").code == 0


def test_file_names_from_study_names_are_bounded_and_distinct():
    from hpsearch.names import MAX_SLUG_BYTES, file_name_for
    from hpsearch.results.export import safe_directory_name

    assert safe_directory_name("a/b c") == "a_b_c"  # short names map as before: old folders are found
    first, second = file_name_for(LONG_NAME), file_name_for(LONG_NAME[:-1] + "m")
    assert first != second and first.startswith("long-nnn")
    wide = file_name_for("é" * 300)  # two bytes a character
    for name in (first, second, wide):
        assert len(name.encode()) <= MAX_SLUG_BYTES and "/" not in name


def _long_named_study(db_url: str) -> None:
    from hpsearch.storage import TrialState, open_storage

    storage = open_storage(db_url)
    study = storage.create_study(LONG_NAME, engine="optuna", algorithm="tpe", objective="val_loss",
                                 direction="minimize", space={}, dataset={}, settings={}, versions={})
    for number in range(2):
        trial = storage.start_trial(study.id, {"units": number}, worker="elsewhere:1")
        storage.record_epochs(trial.id, [(0, {"loss": 1.0, "val_loss": 1.0 - number / 10}, None)])
        storage.finish_trial(trial.id, TrialState.COMPLETE, value=1.0 - number / 10)
    storage.close()


def test_a_study_with_a_500_character_name_still_plots(cli, db_url, tmp_path):
    # Such a study predates the length rule (or came through the storage API): plot must still work.
    _long_named_study(db_url)
    result = cli("plot", LONG_NAME)
    assert result.code == 0, result.err
    [folder] = (tmp_path / "plots").iterdir()
    assert len(folder.name) <= 100 and (folder / "history.png").is_file()


# -- printed commands ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_printed_commands_are_shell_quoted_and_keep_the_password_masked(trained):
    from hpsearch.study_report import resume_command

    _, run = trained
    [shown] = [line for line in run.out.splitlines() if line.startswith("show it with: ")]
    assert shlex.split(shown.removeprefix("show it with: ")) == ["hpsearch", "best", STUDY, "--storage",
                                                                  trained[0].db_url]
    # resume_command reads only the study's name (Ctrl-C prints it: "resume with: ...").
    command = resume_command(SimpleNamespace(name=STUDY), "postgresql://user:secret@db.example/hp")
    assert "secret" not in command
    assert shlex.split(command) == ["hpsearch", "resume", STUDY, "--storage",
                                    "postgresql://user:***@db.example/hp"]


# -- retrain and its files ----------------------------------------------------------------------------
@pytest.mark.slow
def test_retrain_prints_quoted_commands_and_writes_files_of_the_users_mode(retrained):
    _, out, result = retrained
    [predict] = [line for line in result.out.splitlines() if line.startswith("predict with: ")]
    assert shlex.split(predict.removeprefix("predict with: ")) == [
        "hpsearch", "predict", str(out.resolve() / "model.keras"), "DATA.csv"]
    [logs] = [line for line in result.out.splitlines() if line.startswith("logs: ")]
    assert shlex.split(logs.partition("; ")[2]) == ["tensorboard", "--logdir",
                                                    str(out.resolve() / "tensorboard")]
    # Written under umask 022: readable by the group and others, like any file the user makes.
    assert mode(out / "model.keras") == 0o644 and mode(out / "model.json") == 0o644


@pytest.mark.slow
def test_retrain_into_the_same_out_never_overwrites_a_recorded_model(retrained):
    from hpsearch.results.export import sha256_of
    from hpsearch.storage import open_storage

    hpsearch, out, _ = retrained
    first = (out / "model.keras").read_bytes()
    again = hpsearch("retrain", STUDY, "--epochs", "2", "--patience", "1", "--seed", "1", "--quiet",
                     "--out", out)
    assert again.code == 0, again.err
    second_dir = out.with_name(out.name + "-2").resolve()
    assert f"writing to {second_dir} instead" in again.out
    assert (out / "model.keras").read_bytes() == first
    storage = open_storage(hpsearch.db_url, create=False)
    models = storage.list_models(storage.get_study(STUDY).id)
    storage.close()
    assert [Path(model.path).parent for model in models] == [out.resolve(), second_dir]
    for model in models:  # every record still describes the file it points to
        assert sha256_of(Path(model.path)) == model.sha256


@pytest.mark.slow
def test_retrain_out_that_is_a_file_is_refused_in_one_sentence(trained, tmp_path):
    hpsearch, _ = trained
    (tmp_path / "taken").write_text("not a folder")
    line = one_line_error(hpsearch("retrain", STUDY, "--epochs", "1", "--quiet", "--out", tmp_path / "taken"))
    assert "--out" in line and "is a file" in line


@pytest.mark.slow
def test_a_study_with_a_500_character_name_still_retrains(trained, tmp_path):
    hpsearch, _ = trained
    # A copy of the database with the study renamed, as an older hpsearch could have created it.
    copy = tmp_path / "long.db"
    source, target = sqlite3.connect(hpsearch.folder / "hp.db"), sqlite3.connect(copy)
    with target:
        source.backup(target)
        target.execute("UPDATE hp_studies SET name = ? WHERE name = ?", (LONG_NAME, STUDY))
    source.close()
    target.close()
    result = hpsearch("retrain", LONG_NAME, "--epochs", "1", "--quiet", db_url=f"sqlite:///{copy}")
    assert result.code == 0, result.err
    [folder] = [path for path in (hpsearch.folder / "models").iterdir() if path.name.startswith("long-")]
    assert len(folder.name) <= 100
    [run] = folder.iterdir()
    assert (run / "model.keras").is_file()
    shutil.rmtree(hpsearch.folder / "models")


# -- predict ------------------------------------------------------------------------------------------
def _rows_for(model_dir: Path, path: Path) -> Path:
    features = json.loads((model_dir / "model.json").read_text())["preprocessing"]["feature_names"]
    path.write_text(",".join(features) + "\n" + "\n".join(",".join(["1"] * len(features)) for _ in range(3)))
    return path


@pytest.mark.slow
def test_predict_out_directory_gets_predictions_csv_inside(retrained, cli, tmp_path):
    _, model_dir, _ = retrained
    rows = _rows_for(model_dir, tmp_path / "rows.csv")
    (tmp_path / "results").mkdir()
    with umask(0o022):
        result = cli("predict", model_dir, rows, "--out", tmp_path / "results")
    assert result.code == 0, result.err
    written = tmp_path / "results" / "predictions.csv"
    assert f"wrote 3 predictions to {written}" in result.out
    assert written.read_text().splitlines()[0].startswith("prediction,probability_")
    assert mode(written) == 0o644
    # A path ending in a separator names a folder to make.
    assert cli("predict", model_dir, rows, "--out", f"{tmp_path / 'new'}{os.sep}").code == 0
    assert (tmp_path / "new" / "predictions.csv").is_file()


def test_written_files_respect_the_umask(tmp_path):
    from hpsearch.results.export import atomic_write

    for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        target = tmp_path / f"file-{mask:o}.txt"
        with umask(mask):
            atomic_write(target, lambda temporary: temporary.write_text("x"), suffix=".txt")
        assert mode(target) == expected, f"umask {mask:o}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file-2.txt", "file-22.txt", "file-77.txt"]


#: Card edits -> the key the one-line error must name.
CARD_EDITS = {
    "version is a string": (lambda card: card.update(version="1"), "version"),
    "feature_names is a string": (
        lambda card: card["preprocessing"].update(feature_names="abc"), "preprocessing.feature_names"),
    "numeric is an object": (lambda card: card["preprocessing"].update(numeric={"a": 1}),
                             "preprocessing.numeric"),
    "a mean is text": (lambda card: card["preprocessing"]["numeric"][0].update(mean="zero"),
                       "preprocessing.numeric[0].mean"),
    "class_names is a number": (lambda card: card["output"].update(class_names=5), "output.class_names"),
    "too few class names": (lambda card: card["output"].update(class_names=["a"]), "output.class_names"),
    "task is unknown": (lambda card: card["output"].update(task="ranking"), "output.task"),
    "output is a list": (lambda card: card.update(output=[1]), "output"),
    "input_kind is a number": (lambda card: card["preprocessing"].update(input_kind=3),
                               "preprocessing.input_kind"),
    "sha is a number": (lambda card: card.update(model_sha256=12), "model_sha256"),
    # Well typed, but not this model's inputs (named columns for a model of one array input).
    "input_kind swapped": (lambda card: card["preprocessing"].update(input_kind="frame"), "preprocessing"),
    "a class name too many": (lambda card: card["output"]["class_names"].append("extra"), "output"),
}


@pytest.mark.slow
@pytest.mark.parametrize("edit", CARD_EDITS, ids=list(CARD_EDITS))
def test_predict_refuses_a_card_with_a_wrong_type_naming_the_key(retrained, cli, tmp_path, edit):
    _, model_dir, _ = retrained
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("tensorboard", "checkpoint.keras"))
    card = json.loads((copy / "model.json").read_text())
    change, key = CARD_EDITS[edit]
    change(card)
    (copy / "model.json").write_text(json.dumps(card))
    line = one_line_error(cli("predict", copy, _rows_for(model_dir, tmp_path / "rows.csv")))
    assert str(copy / "model.json") in line and repr(key) in line


# -- listings and abandoned trials ----------------------------------------------------------------------
def test_a_repeated_state_filter_lists_each_trial_once(cli, db_url):
    _long_named_study(db_url)
    result = cli("trials", LONG_NAME, "--state", "complete", "--state", "COMPLETE", "--json")
    assert result.code == 0, result.err
    assert [trial["number"] for trial in json.loads(result.out)] == [0, 1]


def test_an_abandoned_trial_lasts_until_its_last_heartbeat_not_until_resume(db_url, tmp_path):
    from hpsearch.recovery import fail_abandoned_trials
    from hpsearch.storage import TrialState, open_storage

    storage = open_storage(db_url)
    study = storage.create_study("gone", engine="optuna", algorithm="tpe", objective="val_loss",
                                 direction="minimize", space={}, dataset={},
                                 settings={"stale_after_s": 60}, versions={})
    trial = storage.start_trial(study.id, {"units": 1}, worker="another-host:1")
    # Killed an hour ago, 100 s into the trial; resumed only now.
    started = datetime.now(UTC) - timedelta(seconds=3600)
    connection = sqlite3.connect(tmp_path / "hp.db")
    with connection:
        connection.execute("UPDATE hp_trials SET started_at = ?, heartbeat_at = ? WHERE id = ?",
                           (started.replace(tzinfo=None).isoformat(" "),
                            (started + timedelta(seconds=100)).replace(tzinfo=None).isoformat(" "), trial.id))
    connection.close()
    [failed] = fail_abandoned_trials(storage, storage.get_study("gone"))
    assert failed.state is TrialState.FAILED and failed.interrupted
    assert failed.duration_s == pytest.approx(100, abs=1)
    assert failed.ended_at == started + timedelta(seconds=100)
    storage.close()
