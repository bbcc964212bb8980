"""Resume inside a trial: a long trial keeps one checkpoint of its last completed epoch.

A trial that plans at least ``CHECKPOINT_MIN_EPOCHS`` epochs writes, after every epoch, one file holding
everything needed to go on from there: the model's weights and dropout seed states, the optimizer's state
(slots, iteration count, learning rate), the state of the callbacks that keep any (a Hyperband round's
best weights so far) and the curve so far. The file is written beside its final name and moved over it
(``os.replace``), so a kill at any instant leaves the previous epoch's checkpoint or this one, never half
of one. Each epoch's data order comes from the trial's seed and the epoch's number alone
(``search.training.epoch_batches``), so the epochs trained after a checkpoint are, bit for bit, those the
uninterrupted trial trained.

When the trial is interrupted (``kill -9``, Ctrl-C, a lost machine), ``resume`` retries its configuration
as a new trial with ``retry_of``; the retry takes the checkpoint over (renames it to its own number, so
there is still one file per running trial), replays the saved curve into the store and into the engine's
callbacks (Optuna's pruner sees every epoch once), and trains only the epochs that are left. Its curve is
one continuous curve of the planned length. The checkpoint is deleted when the trial ends; ``resume``
deletes those no running or retried trial can use.

Shorter trials are simply retried from their first epoch: for them a checkpoint per epoch would cost
more than what a retry repeats. Trials trained as tasks on a Dask cluster are retried from the start too
(a Dask worker's disk is not this process's). The scikit-learn engine resumes by folds instead: a retried
candidate keeps the folds its interrupted attempt finished (see ``search.engines.sklearn_engine``).

Files live in ``hpsearch-checkpoints/<database>/<study>/`` next to the SQLite file (in the working
directory for a server database), like KerasTuner's Hyperband folder; ``--checkpoint-dir`` on a shared disk
lets a retry on another machine continue too. The database's name is part of the path because a study is
named within its database only: two databases in one folder may each hold a study ``s``, and neither may
sweep or continue from the other's files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Trials planning fewer epochs than this are retried from the start instead of checkpointed.
CHECKPOINT_MIN_EPOCHS = 10
#: Folder (next to the SQLite file) holding one subfolder of checkpoints per study.
CHECKPOINT_FOLDER = "hpsearch-checkpoints"
#: Study settings key of ``--checkpoint-dir``.
CHECKPOINT_DIR_SETTING = "checkpoint_dir"
#: 2: model variables with seed-generator states (1 held weights only, and is not continued).
_FORMAT = 2
_NAME = re.compile(r"trial-(\d+)\.npz")


def study_work_folder(storage_url: str, folder: str, study_name: str) -> Path:
    """``folder/<database>/<study>`` next to the SQLite file (in the working directory for a server
    database): where a study keeps files beside its database (checkpoints, KerasTuner's Hyperband
    weights)."""
    return _work_root(storage_url) / folder / _database_slug(storage_url) / _slug(study_name)


def _work_root(storage_url: str) -> Path:
    from storage.connection import sqlite_path

    database = sqlite_path(storage_url)
    return database.expanduser().resolve().parent if database is not None else Path.cwd()


def _database_slug(storage_url: str) -> str:
    """The database's file name (SQLite) or database name (a server): the same on every machine that
    shares the study, whatever host name its URL uses."""
    from sqlalchemy.engine import make_url

    from storage.connection import sqlite_path

    database = sqlite_path(storage_url)
    return _slug(database.name if database is not None else make_url(storage_url).database or "database")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


def remove_empty_folders(folder: Path, stop_at: Path) -> None:
    """Remove ``folder`` and then each parent below ``stop_at`` while they are empty."""
    while folder != stop_at and stop_at in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (another study's files), or already gone
            return
        folder = folder.parent


def study_checkpoints(storage_url: str, study_name: str, settings: Mapping[str, Any]) -> StudyCheckpoints:
    """The study's trial checkpoints (see the module docstring)."""
    given = settings.get(CHECKPOINT_DIR_SETTING)
    if given:
        # The user's folder stays; our subfolders in it go once empty.
        root = Path(given).expanduser()
        return StudyCheckpoints(root / _database_slug(storage_url) / _slug(study_name), keep=root)
    return StudyCheckpoints(study_work_folder(storage_url, CHECKPOINT_FOLDER, study_name),
                            keep=_work_root(storage_url))


@dataclass(frozen=True)
class Restored:
    """What a checkpoint gave back: epochs already trained and their curve."""

    done: int  # Keras epochs completed (absolute: counts the round's ``initial_epoch``)
    history: dict[str, list[float]]  # this fit's epochs from ``initial_epoch`` to ``done - 1``


class StudyCheckpoints:
    """The checkpoint files of one study: one per running (or interrupted, awaiting retry) trial."""

    def __init__(self, folder: Path, keep: Path) -> None:
        self.folder = folder
        #: the folder above ``folder`` that stays when the last checkpoint goes (ours below it go)
        self.keep = keep

    def path(self, number: int) -> Path:
        return self.folder / f"trial-{number}.npz"

    def take_over(self, number: int, retry_of: int | None) -> None:
        """A retry inherits the checkpoint of the trial it retries (renamed: still one file)."""
        if retry_of is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(retry_of), self.path(number))

    def discard(self, number: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(number).unlink()
        remove_empty_folders(self.folder, self.keep)  # a finished run leaves no empty folder behind

    def numbers(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(match.group(1)) for entry in self.folder.iterdir()
                      if (match := _NAME.fullmatch(entry.name)))

    def sweep(self, keep: Iterable[int]) -> list[int]:
        """Delete checkpoints no trial can use any more (``keep``: running trials and those due a retry)."""
        kept = set(keep)
        removed = [number for number in self.numbers() if number not in kept]
        for number in removed:
            self.discard(number)
        for partial in self.folder.glob("*.partial") if self.folder.is_dir() else ():
            with contextlib.suppress(OSError):
                partial.unlink()  # a write cut short by a kill
        return removed

    def epochs_saved(self, number: int) -> int | None:
        """Epochs the trial's checkpoint holds (None: no readable checkpoint)."""
        import numpy

        try:
            with numpy.load(self.path(number), allow_pickle=False) as arrays:
                return int(json.loads(str(arrays["meta"]))["done"])
        except (OSError, KeyError, ValueError):
            return None

    def for_fit(self, number: int, identity: Mapping[str, Any]) -> EpochCheckpoint:
        return EpochCheckpoint(self.path(number), dict(identity))


class EpochCheckpoint:
    """The checkpoint of one trial's ``Model.fit``: restored before training, rewritten after each epoch.

    ``identity`` (configuration key, epoch range, seed) must match for a checkpoint to be used: a file
    left by other work is ignored.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity

    # -- reading ----------------------------------------------------------------------------------
    def restore(self, model: Any, callbacks: Sequence[Any]) -> Restored | None:
        """Load weights, optimizer state and callback state into ``model``/``callbacks``; None when there
        is no usable checkpoint (absent, unreadable, or of other work)."""
        import numpy

        try:
            with numpy.load(self.path, allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                if meta.get("format") != _FORMAT or meta.get("identity") != self.identity:
                    return None
                weights = [arrays[f"w{index}"] for index in range(meta["weights"])]
                slots = [arrays[f"o{index}"] for index in range(meta["optimizer"])]
                states = {name: ({**state, "arrays": [arrays[f"c{position}_{index}"]
                                                      for index in range(state["arrays"])]})
                          for position, (name, state) in enumerate(meta["callbacks"].items())}
        except (OSError, KeyError, ValueError):
            return None
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if len(optimizer.variables) != len(slots) or len(model.variables) != len(weights):
            return None  # checked before anything is loaded: the fit then starts from scratch
        for variable, value in zip(model.variables, weights, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, slots, strict=True):
            variable.assign(value)
        for callback in callbacks:
            state = states.get(_state_name(callback))
            if state is not None and hasattr(callback, "restore_checkpoint_state"):
                callback.restore_checkpoint_state(state["json"], state["arrays"])
        return Restored(done=int(meta["done"]), history={k: list(v) for k, v in meta["history"].items()})

    # -- writing ----------------------------------------------------------------------------------
    def write(self, model: Any, done: int, history: Mapping[str, Sequence[float]],
              callbacks: Sequence[Any]) -> None:
        import keras
        import numpy

        # ``variables``, not ``weights``: they include the dropout layers' seed-generator states, so the
        # epochs after the checkpoint draw the masks the uninterrupted trial would have drawn.
        state = [keras.ops.convert_to_numpy(variable) for variable in model.variables]
        arrays: dict[str, Any] = {f"w{index}": value for index, value in enumerate(state)}
        slots = [keras.ops.convert_to_numpy(variable) for variable in model.optimizer.variables]
        arrays.update({f"o{index}": value for index, value in enumerate(slots)})
        states: dict[str, Any] = {}
        for callback in callbacks:
            if not hasattr(callback, "checkpoint_state"):
                continue
            state, state_arrays = callback.checkpoint_state()
            position = len(states)
            states[_state_name(callback)] = {"json": state, "arrays": len(state_arrays)}
            arrays.update({f"c{position}_{index}": value for index, value in enumerate(state_arrays)})
        meta = {"format": _FORMAT, "identity": self.identity, "done": done,
                "history": {name: [float(v) for v in values] for name, values in history.items()},
                "weights": len(state), "optimizer": len(slots), "callbacks": states}
        arrays["meta"] = numpy.array(json.dumps(meta))
        partial = self.path.with_name(self.path.name + ".partial")
        for attempt in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as file:
                    numpy.savez(file, **arrays)
                break
            except FileNotFoundError:
                # Another worker's ended trial removed the study's (then empty) folder, or those
                # above it, in between.
                if attempt == 2:
                    raise
        os.replace(partial, self.path)

    def keras_callback(self, initial_epoch: int, restored: Restored | None, callbacks: Sequence[Any]) -> Any:
        """The callback (put it last) that rewrites the checkpoint after every epoch."""
        import keras

        checkpoint = self
        history: dict[str, list[float]] = {name: list(values)
                                           for name, values in (restored.history if restored else {}).items()}

        class _Checkpoint(keras.callbacks.Callback):
            failed = False

            def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
                logs = logs or {}
                loss = logs.get("loss")
                if loss is not None and not math.isfinite(float(loss)):
                    return  # the trial fails on this epoch: nothing to continue from
                done_before = len(next(iter(history.values()), []))
                for name, value in logs.items():
                    # A metric that first appears late is padded, so every list stays one value per epoch.
                    history.setdefault(name, [math.nan] * done_before).append(float(value))
                if self.failed:
                    return
                try:
                    checkpoint.write(self.model, epoch + 1, history, callbacks)
                except OSError as error:
                    # A checkpoint only saves a retry time: the trial goes on without one (full disk).
                    self.failed = True
                    with contextlib.suppress(OSError):
                        checkpoint.path.unlink()
                    print(f"note: no checkpoint of {checkpoint.path.stem} after epoch {epoch + 1}: {error}",
                          file=sys.stderr, flush=True)

        return _Checkpoint()


def _state_name(callback: Any) -> str:
    return type(callback).__qualname__


def replay(callbacks: Sequence[Any], model: Any, initial_epoch: int, restored: Restored) -> None:
    """Hand the restored epochs to the callbacks that observe epochs (the store's recorder, Optuna's
    pruner), in order, as if they had just ended; a pruner may stop the trial here."""
    for callback in callbacks:
        callback.set_model(model)
    names = list(restored.history)
    for offset in range(restored.done - initial_epoch):
        logs = {name: restored.history[name][offset] for name in names
                if offset < len(restored.history[name]) and not math.isnan(restored.history[name][offset])}
        for callback in callbacks:
            if hasattr(callback, "replay_epoch"):
                callback.replay_epoch(initial_epoch + offset, dict(logs))
