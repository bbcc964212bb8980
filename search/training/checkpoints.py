"""Resume inside a trial: a long trial keeps one checkpoint of its last completed epoch.

A trial that plans at least ``CHECKPOINT_MIN_EPOCHS`` epochs writes, after every epoch, one file holding
everything needed to go on from there: the model's weights and dropout seed states, the optimizer's state
(slots, iteration count, learning rate), the state of the callbacks that keep any (a Hyperband round's
best weights so far) and the curve so far. The file is written beside its final name, flushed to disk and
moved over it (``os.replace``, then the folder is flushed too), so a kill or a power cut at any instant
leaves the previous epoch's checkpoint or this one, never half of one. Each epoch's data order comes from
the trial's seed and the epoch's number alone (``hpsearch.training.fit.epoch_batches``), so the epochs trained
after a checkpoint are, bit for bit, those the uninterrupted trial trained.

When the trial is interrupted (``kill -9``, Ctrl-C, a lost machine), ``resume`` retries its configuration
as a new trial with ``retry_of``; the retry takes the checkpoint over (renames it to its own number, so
there is still one file per running trial), replays the saved curve into the store and into the engine's
callbacks (Optuna's pruner sees every epoch once), and trains only the epochs that are left. Its curve is
one continuous curve of the planned length. The checkpoint is deleted when the trial ends; ``resume``
deletes those no running or retried trial can use.

A checkpoint is this trial's only when everything it was trained from matches: the study (its name, row
id and creation time, so a study created again under the same name after its database was deleted is
another study), the data's fingerprint, the trial's seed, the configuration, the epoch range, and every
array's shape (the model's input width, layers and outputs). A file that does not match, cannot be read,
or claims what this trial cannot hold (more epochs than it plans, a curve of another length) is set aside
(renamed ``<file>.rejected``, kept for inspection) with one warning line naming it and why, and the trial
trains from its first epoch: a checkpoint only saves time, it never decides a result. Files are read with
``allow_pickle=False``: a checkpoint is data, never code.

Shorter trials are simply retried from their first epoch: for them a checkpoint per epoch would cost
more than what a retry repeats. A trial trained as a task on a Dask cluster keeps its checkpoint only
in a ``--checkpoint-dir`` (a folder its workers share, see ``hpsearch.training.fit_tasks``): a task that
the scheduler runs again after its worker died, or the trial's retry, then continues from it; without
one it is trained again from the start (a Dask worker's disk is not this process's). The scikit-learn
engine resumes by folds instead: a retried candidate keeps the folds its interrupted attempt finished
(see ``hpsearch.engines.sklearn.resume``).

Files live in ``hpsearch-checkpoints/<database>/<study>/`` next to the SQLite file (in the working
directory for a server database), like KerasTuner's Hyperband folder; ``--checkpoint-dir`` on a shared disk
lets a retry on another machine continue too. The database's name is part of the path because a study is
named within its database only: two databases in one folder may each hold a study ``s``, and neither may
sweep or continue from the other's files. Both names become folder names one to one
(``hpsearch.training.work_files.folder_name``): ``s x`` and ``s_x`` get two folders.
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

from hpsearch.storage import StoreLocation

from ..settings import StudySettings
from .work_files import (
    database_slug,
    folder_name,
    identity_mismatch,
    remove_empty_folders,
    set_aside,
    study_stamp,
    study_work_folder,
    work_root,
    write_durably,
)

__all__ = ["CHECKPOINT_DIR_SETTING", "CHECKPOINT_FOLDER", "CHECKPOINT_MIN_EPOCHS", "EpochCheckpoint",
           "Restored", "StudyCheckpoints", "remove_empty_folders", "replay", "study_checkpoints",
           "study_work_folder"]

#: Trials planning fewer epochs than this are retried from the start instead of checkpointed.
CHECKPOINT_MIN_EPOCHS = 10
#: Folder (next to the SQLite file) holding one subfolder of checkpoints per study.
CHECKPOINT_FOLDER = "hpsearch-checkpoints"
#: Study settings key of ``--checkpoint-dir``.
CHECKPOINT_DIR_SETTING = "checkpoint_dir"
#: 3: identity with the study, data, seed; 2 had configuration and epochs only (set aside, not continued).
_FORMAT = 3
_NAME = re.compile(r"trial-(\d+)\.npz")


# -- one study's checkpoints ----------------------------------------------------------------------------
def study_checkpoints(
    storage_url: str | StoreLocation, study: Any, settings: StudySettings
) -> StudyCheckpoints:
    """The trial checkpoints of ``study`` (see the module docstring).

    Args:
        storage_url: the study's database.
        study: its ``storage.StudyRecord``: the name gives the folder, the row its identity.
        settings: the study's settings (``--checkpoint-dir`` among them).

    Returns:
        The study's ``StudyCheckpoints``.
    """
    given = settings.checkpoint_dir
    stamp = study_stamp(study)
    if given:
        # The user's folder stays; our subfolders in it go once empty.
        root = Path(given).expanduser()
        return StudyCheckpoints(root / database_slug(storage_url) / folder_name(study.name), keep=root,
                                stamp=stamp, shared=True)
    return StudyCheckpoints(study_work_folder(storage_url, CHECKPOINT_FOLDER, study.name),
                            keep=work_root(storage_url), stamp=stamp)


@dataclass(frozen=True)
class Restored:
    """What a checkpoint gave back: epochs already trained and their curve."""

    done: int  # Keras epochs completed (absolute: counts the round's ``initial_epoch``)
    history: dict[str, list[float]]  # this fit's epochs from ``initial_epoch`` to ``done - 1``


class StudyCheckpoints:
    """The checkpoint files of one study: one per running (or interrupted, awaiting retry) trial."""

    def __init__(self, folder: Path, keep: Path, stamp: Mapping[str, Any], *, shared: bool = False) -> None:
        self.folder = folder
        #: the folder above ``folder`` that stays when the last checkpoint goes (ours below it go)
        self.keep = keep
        #: the study's identity (``study_stamp``), written into and required of every checkpoint
        self.stamp = dict(stamp)
        #: the folder is the user's ``--checkpoint-dir``, which fit tasks on other machines may share
        self.shared = shared

    def path(self, number: int) -> Path:
        """Where trial ``number``'s checkpoint is (it may not exist)."""
        return self.folder / f"trial-{number}.npz"

    def take_over(self, number: int, retry_of: int | None) -> None:
        """A retry inherits the checkpoint of the trial it retries (renamed: still one file)."""
        if retry_of is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(retry_of), self.path(number))

    def discard(self, number: int) -> None:
        """Delete trial ``number``'s checkpoint (the trial ended), and the study's folders once empty."""
        with contextlib.suppress(FileNotFoundError):
            self.path(number).unlink()
        remove_empty_folders(self.folder, self.keep)  # a finished run leaves no empty folder behind

    def numbers(self) -> list[int]:
        """The trial numbers that have a checkpoint file, in order."""
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
        """Epochs the trial's checkpoint holds, for ``resume``'s message (None: none this study can use;
        the retry itself judges the file, and sets it aside when it cannot use it)."""
        try:
            saved = _read(self.path(number))
        except (_Rejected, FileNotFoundError):
            return None
        identity = saved.meta["identity"]
        epochs, initial = identity.get("epochs"), identity.get("initial_epoch")
        if identity.get("study") != self.stamp or not _count(epochs) or not _count(initial):
            return None
        return None if _implausible(saved, initial, epochs) else saved.done

    def for_fit(self, number: int, identity: Mapping[str, Any]) -> EpochCheckpoint:
        """The checkpoint of trial ``number``'s fit described by ``identity`` (which must hold the
        ``initial_epoch`` and ``epochs`` of the fit; the study's stamp is added here)."""
        return EpochCheckpoint(self.path(number), {"study": self.stamp, **identity})


class _Rejected(Exception):
    """A checkpoint this trial must not use; the message says why, for the warning."""


@dataclass
class _Saved:
    meta: dict[str, Any]
    done: int
    history: dict[str, list[float]]
    weights: list[Any]
    slots: list[Any]
    states: dict[str, dict[str, Any]]


def _read(path: Path) -> _Saved:
    """Everything a checkpoint file holds, checked for form (not yet against a model).

    Raises FileNotFoundError when there is none, ``_Rejected`` when it is damaged or malformed."""
    import numpy

    if path.is_file() and path.stat().st_size == 0:
        raise _Rejected("is empty (0 bytes)")
    try:
        with numpy.load(path, allow_pickle=False) as arrays:
            if "meta" not in arrays.files:
                raise _Rejected("holds no description of its content (no 'meta' entry)")
            meta = json.loads(str(arrays["meta"][()]))
            if not isinstance(meta, dict):
                raise _Rejected("holds a malformed description (not a JSON object)")
            if meta.get("format") != _FORMAT:
                raise _Rejected(f"is of checkpoint format {meta.get('format')!r}, not {_FORMAT}")
            counts = {key: meta.get(key) for key in ("weights", "optimizer", "done")}
            callbacks = meta.get("callbacks")
            if (any(not _count(value) for value in counts.values()) or not isinstance(callbacks, dict)
                    or not isinstance(meta.get("identity"), dict)
                    or not isinstance(meta.get("history"), dict)):
                raise _Rejected("holds a malformed description (missing or mistyped counts)")
            weights = [arrays[f"w{index}"] for index in range(counts["weights"])]
            slots = [arrays[f"o{index}"] for index in range(counts["optimizer"])]
            states = {}
            for position, (name, state) in enumerate(callbacks.items()):
                if not isinstance(state, dict) or not _count(state.get("arrays")):
                    raise _Rejected(f"holds a malformed state of callback {name}")
                states[name] = {"json": state.get("json"), "arrays": [
                    arrays[f"c{position}_{index}"] for index in range(state["arrays"])]}
    except FileNotFoundError:
        raise
    except _Rejected:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged zip or npy raises anything from EOFError to TypeError
        raise _Rejected(f"cannot be read ({type(error).__name__}: {error})") from None
    for array in [*weights, *slots, *(a for state in states.values() for a in state["arrays"])]:
        if array.dtype.kind not in "biuf":
            raise _Rejected(f"holds an array of type {array.dtype} where numbers belong")
    history: dict[str, list[float]] = {}
    for name, values in meta["history"].items():
        if not isinstance(values, list) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                   for v in values):
            raise _Rejected(f"holds a malformed curve of {name!r}")
        history[name] = [float(v) for v in values]
    return _Saved(meta, counts["done"], history, weights, slots, states)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _implausible(saved: _Saved, first: int, last: int) -> str | None:
    """Why ``saved`` cannot be the state of a fit from epoch ``first`` to ``last`` (None: it can)."""
    if not first < saved.done <= last:
        return f"claims {saved.done} epochs done, but this fit trains epochs {first + 1} to {last}"
    lengths = {name: len(values) for name, values in saved.history.items()}
    if not lengths or any(length != saved.done - first for length in lengths.values()):
        return f"holds a curve of {sorted(set(lengths.values()))} epochs for {saved.done - first} done"
    return None


def _shapes_differ(kind: str, arrays: Sequence[Any], variables: Sequence[Any]) -> str | None:
    if len(arrays) != len(variables):
        return f"holds {len(arrays)} {kind} arrays where this model has {len(variables)}"
    for index, (array, variable) in enumerate(zip(arrays, variables, strict=True)):
        if tuple(array.shape) != tuple(variable.shape):
            return (f"holds {kind} array {index} of shape {tuple(array.shape)} where this model has "
                    f"{tuple(variable.shape)} (another model or input width)")
    return None


class EpochCheckpoint:
    """The checkpoint of one trial's ``Model.fit``: restored before training, rewritten after each epoch.

    ``identity`` (study stamp, data fingerprint, seed, input width, configuration key, epoch range) must
    match for a checkpoint to be used; a file that does not is set aside (see the module docstring).
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity

    # -- reading ----------------------------------------------------------------------------------
    def restore(self, model: Any, callbacks: Sequence[Any]) -> Restored | None:
        """Load weights, optimizer state and callback state into ``model``/``callbacks``.

        Args:
            model: the freshly built, compiled model of this fit.
            callbacks: the fit's callbacks; those with ``restore_checkpoint_state`` get their state back.

        Returns:
            What was restored, or None when there is no checkpoint or it could not be used: a damaged,
            foreign or implausible file is set aside with one warning, before anything is loaded, and the
            fit starts from its first epoch.
        """
        try:
            saved = _read(self.path)
        except FileNotFoundError:
            return None
        except _Rejected as rejected:
            return self._reject(str(rejected))
        why = (identity_mismatch(saved.meta["identity"], self.identity)
               or _implausible(saved, int(self.identity["initial_epoch"]), int(self.identity["epochs"])))
        optimizer = model.optimizer
        if why is None:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            why = (_shapes_differ("weight", saved.weights, model.variables)
                   or _shapes_differ("optimizer", saved.slots, optimizer.variables))
        keeping = [callback for callback in callbacks if hasattr(callback, "restore_checkpoint_state")]
        for callback in keeping if why is None else ():
            callback.set_model(model)
            state = saved.states.get(_state_name(callback))
            check = getattr(callback, "check_checkpoint_state", None)
            if state is not None and check is not None:
                why = check(state["json"], state["arrays"])
                if why is not None:
                    break
        if why is not None:
            return self._reject(why)
        # Checked above before anything is loaded: from here on nothing is left half restored.
        for variable, value in zip(model.variables, saved.weights, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved.slots, strict=True):
            variable.assign(value)
        for callback in keeping:
            state = saved.states.get(_state_name(callback))
            if state is not None:
                callback.restore_checkpoint_state(state["json"], state["arrays"])
        return Restored(done=saved.done, history=saved.history)

    def _reject(self, why: str) -> None:
        set_aside(self.path, "checkpoint", why, "the trial trains from its first epoch without it")
        return None

    # -- writing ----------------------------------------------------------------------------------
    def write(self, model: Any, done: int, history: Mapping[str, Sequence[float]],
              callbacks: Sequence[Any]) -> None:
        """Write the checkpoint after epoch ``done`` durably (``write_durably``).

        Raises:
            OSError: the disk refused; the previous checkpoint, if any, is left as it was.
        """
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
            state_json, state_arrays = callback.checkpoint_state()
            position = len(states)
            states[_state_name(callback)] = {"json": state_json, "arrays": len(state_arrays)}
            arrays.update({f"c{position}_{index}": value for index, value in enumerate(state_arrays)})
        meta = {"format": _FORMAT, "identity": self.identity, "done": done,
                "history": {name: [float(v) for v in values] for name, values in history.items()},
                "weights": len(state), "optimizer": len(slots), "callbacks": states}
        arrays["meta"] = numpy.array(json.dumps(meta))
        write_durably(self.path, lambda file: numpy.savez(file, **arrays))

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
