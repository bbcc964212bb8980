"""A checkpoint is continued only by the trial of the study that wrote it, and only when it is whole.

Issue 38: a study created again under the same name after its database was deleted continued the old
study's checkpoint (and recorded its score as its own); ``s x`` and ``s_x`` shared a folder; a checkpoint
of another input width failed the trial; a 0-byte, truncated or malformed file failed every ``resume``
with an unexpected EOFError or BadZipFile, and one claiming 10^9 done epochs made resume write millions of
epoch rows; checkpoints were moved into place without ``fsync``. Now whatever is foreign, damaged or
implausible is set aside (``<file>.rejected``) with one warning naming it, and the trial starts over.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hpsearch.settings import StudySettings
from hpsearch.storage import open_storage

from tests.conftest import hpsearch_command, spawn_hpsearch, wait_for

URL_NAME = "c.db"
IDENTITY = {"data": "fingerprint", "seed": 7, "features": 4, "config": "key", "initial_epoch": 0,
            "epochs": 10}


def _study(name: str = "s", id: int = 1, created: datetime | None = None) -> SimpleNamespace:
    """What ``study_checkpoints`` reads of a ``StudyRecord``."""
    created = created or datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    return SimpleNamespace(name=name, id=id, created_at=created)


def _checkpoints(tmp_path: Path, study: SimpleNamespace | None = None):
    from hpsearch.training.checkpoints import study_checkpoints

    return study_checkpoints(f"sqlite:///{tmp_path / URL_NAME}", study or _study(), StudySettings())


def _model(features: int = 4):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def _write(checkpoint, done: int = 5, features: int = 4) -> None:
    checkpoint.write(_model(features), done, {"loss": [1.0 / (epoch + 1) for epoch in range(done)]}, [])


def _values(model) -> list[np.ndarray]:
    return [np.array(variable) for variable in model.variables]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def _assert_set_aside(path: Path, err: str, why: str, *, trained: bool = False) -> None:
    """One warning names ``path`` and ``why``; the file is now ``<path>.rejected`` (and ``path``, when the
    trial ``trained`` after it, the trial's own checkpoint of its last epoch)."""
    [line] = _warnings(err)
    assert line.startswith(f"warning: checkpoint {path} ") and why in line, line
    assert f"set aside as {path.name}.rejected; the trial trains from its first epoch without it" in line
    assert path.with_name(path.name + ".rejected").exists()
    assert _saved_epochs(path) == 10 if trained else not path.exists()


# -- whose checkpoint ------------------------------------------------------------------------------------
def test_a_study_created_again_under_the_same_name_does_not_continue_the_old_ones_checkpoint(tmp_path,
                                                                                            capsys):
    old = _checkpoints(tmp_path, _study(created=datetime(2026, 3, 1, tzinfo=UTC)))
    _write(old.for_fit(0, IDENTITY))
    # The database was deleted and the study created again: the same name, row id 1 again, another time.
    new = _checkpoints(tmp_path, _study(created=datetime(2026, 3, 2, tzinfo=UTC)))
    assert new.folder == old.folder and new.path(0).exists()
    assert new.epochs_saved(0) is None, "resume does not announce continuing another study's epochs"
    model = _model()
    before = _values(model)
    assert new.for_fit(0, IDENTITY).restore(model, []) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, _values(model), strict=True)), "nothing loaded"
    _assert_set_aside(new.path(0), capsys.readouterr().err, "belongs to another study ('s', row 1, created "
                                                            "2026-03-01T00:00:00.000000+00:00)")


def test_the_same_studys_checkpoint_is_continued(tmp_path, capsys):
    checkpoints = _checkpoints(tmp_path)
    written = _model()
    written.variables[0].assign(np.full((4, 3), 0.5, dtype="float32"))
    checkpoints.for_fit(0, IDENTITY).write(written, 5, {"loss": [1.0, 0.9, 0.8, 0.7, 0.6]}, [])
    assert checkpoints.epochs_saved(0) == 5
    model = _model()
    restored = checkpoints.for_fit(0, IDENTITY).restore(model, [])
    assert restored is not None and restored.done == 5
    assert restored.history == {"loss": [1.0, 0.9, 0.8, 0.7, 0.6]}
    assert np.array_equal(np.array(model.variables[0]), np.full((4, 3), 0.5))
    assert _warnings(capsys.readouterr().err) == []


@pytest.mark.parametrize(("change", "why"), [
    ({"data": "other fingerprint"}, "the data differ"),
    ({"seed": 8}, "the seed differ"),
    ({"features": 5}, "the input width differ"),
    ({"initial_epoch": 2}, "the first epoch differ"),
])
def test_a_checkpoint_of_other_work_in_the_same_study_is_set_aside(tmp_path, capsys, change, why):
    checkpoints = _checkpoints(tmp_path)
    _write(checkpoints.for_fit(0, IDENTITY))
    assert checkpoints.for_fit(0, {**IDENTITY, **change}).restore(_model(), []) is None
    _assert_set_aside(checkpoints.path(0), capsys.readouterr().err, why)


def test_study_names_that_look_alike_keep_their_own_folders(tmp_path):
    from hpsearch.training.checkpoints import study_work_folder
    from hpsearch.training.work_files import folder_name

    spaced, underscored = _checkpoints(tmp_path, _study("s x")), _checkpoints(tmp_path, _study("s_x", id=2))
    assert spaced.folder != underscored.folder
    assert study_work_folder(f"sqlite:///{tmp_path / 'c.db'}", "w", "s x") != study_work_folder(
        f"sqlite:///{tmp_path / 'c.db'}", "w", "s_x")
    for checkpoints in (spaced, underscored):
        checkpoints.folder.mkdir(parents=True)
        checkpoints.path(0).write_bytes(b"epoch 5 of trial 0")
    assert spaced.sweep(keep=[]) == [0]
    assert underscored.numbers() == [0], "the other study's running trial keeps its checkpoint"
    # Case-insensitive disks, a name that imitates a hashed one, and names that are already folder names.
    names = ["S", "s", "s x", "s_x", "s/x", "s_x--0123456789", "a" * 300, "a" * 301, ".", ".."]
    folders = [folder_name(name) for name in names]
    assert len({folder.lower() for folder in folders}) == len(names)
    assert folder_name("s") == "s" and folder_name("my-study_2.v1") == "my-study_2.v1", "old folders stay"
    assert all(len(folder) <= 100 and not folder.startswith(".") and "/" not in folder for folder in folders)


# -- damaged or implausible ------------------------------------------------------------------------------
def _rewrite(path: Path, change) -> None:
    """Rewrite the checkpoint at ``path`` with ``change(arrays)`` applied to its arrays (meta as a dict)."""
    with np.load(path, allow_pickle=False) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    meta = json.loads(str(arrays["meta"]))
    change(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def _damage(kind: str, path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "not a zip":
        path.write_bytes(b"epoch 5 of trial 0\n")
    elif kind == "malformed JSON":
        with open(path, "wb") as file:
            np.savez(file, meta=np.array("{'done': 5,"))
    elif kind == "pickled":
        with open(path, "wb") as file:
            np.savez(file, meta=np.array([{"done": 5}], dtype=object))
    elif kind == "wrong types":
        _rewrite(path, lambda arrays, meta: meta.update(done="5", weights=[4]))
    elif kind == "10^9 epochs":
        _rewrite(path, lambda arrays, meta: meta.update(done=10**9))
    elif kind == "short curve":
        _rewrite(path, lambda arrays, meta: meta["history"].update(loss=[1.0, 0.5]))
    elif kind == "wrong shape":
        _rewrite(path, lambda arrays, meta: arrays.update(w0=np.zeros((7, 3), dtype="float32")))
    elif kind == "text array":
        _rewrite(path, lambda arrays, meta: arrays.update(w0=np.full((4, 3), "x")))


@pytest.mark.parametrize(("kind", "why"), [
    ("empty", "is empty (0 bytes)"),
    ("truncated", "cannot be read (BadZipFile"),
    ("not a zip", "cannot be read"),
    ("malformed JSON", "cannot be read (JSONDecodeError"),
    ("pickled", "cannot be read (ValueError"),
    ("wrong types", "malformed description"),
    ("10^9 epochs", "claims 1000000000 epochs done, but this fit trains epochs 1 to 10"),
    ("short curve", "holds a curve of [2] epochs for 5 done"),
    ("wrong shape", "holds weight array 0 of shape (7, 3) where this model has (4, 3)"),
    ("text array", "where numbers belong"),
])
def test_a_damaged_or_implausible_checkpoint_is_set_aside_and_the_trial_starts_over(tmp_path, capsys, kind,
                                                                                   why):
    checkpoints = _checkpoints(tmp_path)
    path = checkpoints.path(0)
    _write(checkpoints.for_fit(0, IDENTITY))
    _damage(kind, path)
    if kind != "wrong shape":  # only the model tells that one
        assert checkpoints.epochs_saved(0) is None, "resume's message does not promise a continuation"
    model = _model()
    before = _values(model)
    assert checkpoints.for_fit(0, IDENTITY).restore(model, []) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, _values(model), strict=True)), "nothing loaded"
    _assert_set_aside(path, capsys.readouterr().err, why)
    # The trial then writes its own checkpoint again, and a later retry continues that one.
    _write(checkpoints.for_fit(0, IDENTITY), done=2)
    assert checkpoints.for_fit(0, IDENTITY).restore(_model(), []).done == 2


@pytest.fixture(scope="module")
def digits():
    from hpsearch.data import load_dataset

    return load_dataset("digits", seed=0)


def _fit(dataset, checkpoint, *, stop_after: int | None = None):
    import keras
    from hpsearch.spaces import DEFAULTS
    from hpsearch.training.fit import fit_config

    class Epochs(keras.callbacks.Callback):
        """Counts what the store's recorder would get: replayed epochs and trained ones."""

        def __init__(self):
            super().__init__()
            self.replayed, self.trained = [], []

        def replay_epoch(self, epoch, logs):
            self.replayed.append(epoch)

        def on_epoch_end(self, epoch, logs=None):
            self.trained.append(epoch)
            if stop_after is not None and len(self.trained) >= stop_after:
                self.model.stop_training = True

    epochs = Epochs()
    config = {**DEFAULTS, "n_hidden": 1, "n_neurons": 8, "batch_size": 256, "epochs": 10}
    result = fit_config(config, dataset, objective="val_accuracy", direction="maximize", seed=3,
                        callbacks=[epochs], checkpoint=checkpoint)
    return result, epochs


@pytest.mark.slow
def test_a_checkpoint_of_another_feature_count_is_ignored_and_the_trial_completes(tmp_path, capsys, digits):
    from hpsearch.training.checkpoints import EpochCheckpoint

    path = tmp_path / "trial-0.npz"
    identity = {"config": "key", "initial_epoch": 0, "epochs": 10}  # no width in it: the arrays must tell
    narrow = dataclasses.replace(digits, x_train=digits.x_train[:, :40], x_val=digits.x_val[:, :40],
                                 x_test=digits.x_test[:, :40])
    _fit(narrow, EpochCheckpoint(path, identity), stop_after=3)
    assert path.exists()

    result, epochs = _fit(digits, EpochCheckpoint(path, identity))
    assert result.resumed_at is None and result.epochs_run == 10 and result.value is not None
    assert epochs.replayed == [] and epochs.trained == list(range(10))
    _assert_set_aside(path, capsys.readouterr().err, "holds weight array 0 of shape (40, 8) where this model "
                                                      "has (64, 8)", trained=True)


@pytest.mark.slow
def test_a_checkpoint_claiming_a_billion_epochs_records_only_the_trials_own(tmp_path, capsys, digits):
    from hpsearch.training.checkpoints import EpochCheckpoint

    path = tmp_path / "trial-0.npz"
    identity = {"config": "key", "initial_epoch": 0, "epochs": 10}
    _fit(digits, EpochCheckpoint(path, identity), stop_after=3)
    _damage("10^9 epochs", path)
    result, epochs = _fit(digits, EpochCheckpoint(path, identity))
    assert epochs.replayed == [] and epochs.trained == list(range(10)), "10 epoch rows, not 10^9"
    assert result.epochs_run == 10 and result.resumed_at is None
    _assert_set_aside(path, capsys.readouterr().err, "claims 1000000000 epochs done", trained=True)


# -- durable writes --------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through Linux's /proc")
def test_a_checkpoint_is_fsynced_before_and_after_it_is_moved_into_place(tmp_path, monkeypatch):
    synced: list[str] = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    checkpoints = _checkpoints(tmp_path)
    _write(checkpoints.for_fit(0, IDENTITY))
    partial = str(checkpoints.path(0)) + ".partial"
    assert synced == [partial, str(checkpoints.folder)], "the file's content, then the folder's rename"
    assert checkpoints.path(0).exists() and not Path(partial).exists()


# -- KerasTuner's Hyperband weights ----------------------------------------------------------------------
def test_a_keras_tuner_weights_folder_of_another_study_is_set_aside(tmp_path, capsys):
    from hpsearch.training.checkpoints import study_work_folder
    from hpsearch.training.work_files import STUDY_FILE, claim_work_folder, stamp_work_folder, study_stamp

    folder = study_work_folder(f"sqlite:///{tmp_path / 'k.db'}", "hpsearch-keras-tuner", "k")
    old = {"study": study_stamp(_study("k", created=datetime(2026, 3, 1, tzinfo=UTC))), "data": "f"}
    new = {"study": study_stamp(_study("k", created=datetime(2026, 3, 2, tzinfo=UTC))), "data": "f"}
    stamp_work_folder(folder, old)
    (folder / "trial_0000").mkdir()
    (folder / "trial_0000" / "best-weights.npz").write_bytes(b"old study's weights")

    claim_work_folder(folder, old, "KerasTuner weights folder")
    assert (folder / "trial_0000").exists() and _warnings(capsys.readouterr().err) == [], "its own: kept"

    claim_work_folder(folder, new, "KerasTuner weights folder")
    [line] = _warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: KerasTuner weights folder {folder} belongs to another study")
    assert not folder.exists() and (folder.parent / "k.rejected" / "trial_0000").is_dir()

    # A folder without its study.json (left by an older hpsearch, or by hand) is not continued either.
    (folder / "trial_0000").mkdir(parents=True)
    claim_work_folder(folder, new, "KerasTuner weights folder")
    assert f"has no {STUDY_FILE}" in _warnings(capsys.readouterr().err)[0] and not folder.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not weights"])
def test_a_damaged_keras_tuner_weights_file_is_reported_as_unusable(tmp_path, content):
    from hpsearch.training.weights_files import load_weights
    from hpsearch.training.work_files import unusable_weights

    path = tmp_path / "best-weights.npz"
    path.write_bytes(content)
    assert unusable_weights(path) is not None
    buffer = io.BytesIO()
    np.savez(buffer, np.zeros((4, 3)), np.zeros(3))
    path.write_bytes(buffer.getvalue())
    assert unusable_weights(path) is None and [a.shape for a in load_weights(path)] == [(4, 3), (3,)]


# -- end to end ------------------------------------------------------------------------------------------
EPOCHS = 30
SPACE = f"""\
objective: val_accuracy
params:
  n_neurons: {{type: int, low: 8, high: 32}}
fixed: {{n_hidden: 1, epochs: {EPOCHS}, batch_size: 32, optimizer: adam}}
"""


def _saved_epochs(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return int(json.loads(str(arrays["meta"]))["done"])
    except (OSError, KeyError, ValueError, EOFError):
        return 0


def _killed_mid_trial(tmp_path: Path, url: str, folder: Path) -> None:
    """Run study 'r' and ``kill -9`` it once its first trial has checkpointed two epochs."""
    (tmp_path / "space.yaml").write_text(SPACE)
    process = spawn_hpsearch("run", tmp_path / "space.yaml", "--engine", "optuna", "--data", "digits",
                             "--trials", "1", "--study", "r", "--storage", url, "--quiet", "--in-process",
                             cwd=tmp_path)
    try:
        wait_for(lambda: _saved_epochs(folder / "trial-0.npz") >= 2, interval_s=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def _hpsearch(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    done = subprocess.run(hpsearch_command(*args, "--quiet", "--in-process"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.slow
def test_a_study_created_again_after_its_database_was_deleted_trains_from_scratch(tmp_path):
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    folder = tmp_path / "hpsearch-checkpoints" / "r.db" / "r"
    _killed_mid_trial(tmp_path, url, folder)
    for leftover in tmp_path.glob("r.db*"):
        leftover.unlink()

    again = _hpsearch(tmp_path, "run", tmp_path / "space.yaml", "--engine", "optuna", "--data", "digits",
                      "--trials", "1", "--study", "r", "--storage", url)
    with open_storage(url) as storage:
        study = storage.get_study("r")
        [trial] = storage.list_trials(study.id)
    assert trial.state.value == "COMPLETE" and trial.epochs_run == EPOCHS
    assert "epochs_restored" not in trial.metrics, "no epoch of the deleted study's trial is its own"
    [line] = _warnings(again.stderr)
    assert f"checkpoint {folder / 'trial-0.npz'} belongs to another study" in line


@pytest.mark.slow
def test_resume_sets_a_truncated_checkpoint_aside_and_retrains_the_trial_whole(tmp_path):
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    folder = tmp_path / "hpsearch-checkpoints" / "r.db" / "r"
    _killed_mid_trial(tmp_path, url, folder)
    path = folder / "trial-0.npz"
    path.write_bytes(path.read_bytes()[:100])

    resumed = _hpsearch(tmp_path, "resume", "r", "--storage", url)
    assert "#0 (continuing after" not in resumed.stdout
    [line] = _warnings(resumed.stderr)
    assert line.startswith(f"warning: checkpoint {folder / 'trial-1.npz'} cannot be read")
    with open_storage(url) as storage:
        study = storage.get_study("r")
        retry = storage.get_trial(study.id, 1, with_epochs=True)
    assert retry.retry_of == 0 and retry.state.value == "COMPLETE" and retry.epochs_run == EPOCHS
    assert "epochs_restored" not in retry.metrics
    assert len(retry.curves["loss"]) == EPOCHS and all(value is not None for value in retry.curves["loss"])
