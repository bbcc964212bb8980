"""Files a study keeps beside its database: where they live, whose they are, and how they are written.

Checkpoints (``hpsearch.training.checkpoints``) and KerasTuner's Hyperband weights are read back by later
work, so
three rules hold for both:

- **one folder per name**: a study's (and a database's) name becomes a folder name one to one
  (``folder_name``), so ``s x`` and ``s_x`` never share files or sweep each other's;
- **whose it is**: what is read back carries its study's identity (``study_stamp``: name, row id and
  creation time, which tell a study from one created again under its name after its database was deleted)
  and is used only when that matches; anything else, or anything that cannot be read, is set aside
  (``set_aside``: renamed ``<name>.rejected``) with one warning line naming it and why, and the work
  starts over without it;
- **durable writes**: a file is written beside its final name, flushed and fsynced, moved over it and its
  folder fsynced (``write_durably``), so a kill or a power cut leaves the old file or the new one.

KerasTuner's weights folder says whose it is with a ``study.json`` (``claim_work_folder``,
``stamp_work_folder``); its weights files are checked before a round continues them (``unusable_weights``,
``matching_weights``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.storage.locator import StoreLocation

#: Suffix of a file or folder set aside as damaged or another study's (see ``set_aside``).
REJECTED_SUFFIX = ".rejected"
#: The file in a study's work folder that says whose it is.
STUDY_FILE = "study.json"
#: A name used as it is for a folder: lower case (case-insensitive disks), no hash suffix of its own.
_PLAIN = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,78}[a-z0-9])?")
_HASHED = re.compile(r".*--[0-9a-f]{10}")


def folder_name(name: str) -> str:
    """``name`` (a study's or a database's) as one folder name, distinct for distinct names.

    A short lower-case name of letters, digits, ``.``, ``_`` and ``-`` is used as it is (existing folders
    are found again); any other gets a readable part and ``--`` with the first 10 hex digits of the exact
    name's sha256, so ``s x`` and ``s_x``, or ``S`` and ``s`` on a case-insensitive disk, never share a
    folder.

    Args:
        name: the exact name.

    Returns:
        A non-empty file name without ``/`` that does not start with ``.``.
    """
    if _PLAIN.fullmatch(name) and not _HASHED.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60].strip("._-") or "study"
    return f"{slug}--{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def study_stamp(study: Any) -> dict[str, Any]:
    """What tells one study from any other, even one created again under its name in a new database:
    its name, row id and creation time (to the microsecond, in UTC).

    Args:
        study: a ``storage.StudyRecord`` (``name``, ``id``, ``created_at``).

    Returns:
        A JSON-ready dict; equal for every process that reads the same study's row.
    """
    created = study.created_at
    created = created.astimezone(UTC) if created.tzinfo is not None else created.replace(tzinfo=UTC)
    return {"name": study.name, "id": int(study.id), "created": created.isoformat(timespec="microseconds")}


def study_work_folder(storage_url: str | StoreLocation, folder: str, study_name: str) -> Path:
    """``folder/<database>/<study>`` next to the SQLite file (in the working directory for a server
    database): where a study keeps files beside its database (checkpoints, KerasTuner's Hyperband
    weights). Both names go through ``folder_name``."""
    return work_root(storage_url) / folder / database_slug(storage_url) / folder_name(study_name)


def work_root(storage_url: str | StoreLocation) -> Path:
    from hpsearch.storage.locator import StoreLocation

    database = StoreLocation.of(storage_url).sqlite_file
    return database.expanduser().resolve().parent if database is not None else Path.cwd()


def database_slug(storage_url: str | StoreLocation) -> str:
    """The database's file name (SQLite) or database name (a server): the same on every machine that
    shares the study, whatever host name its URL uses."""
    from hpsearch.storage.locator import StoreLocation

    location = StoreLocation.of(storage_url)
    database = location.sqlite_file
    name = database.name if database is not None else location.database or "database"
    return folder_name(name)


def remove_empty_folders(folder: Path, stop_at: Path) -> None:
    """Remove ``folder`` and then each parent below ``stop_at`` while they are empty."""
    while folder != stop_at and stop_at in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (another study's files), or already gone
            return
        folder = folder.parent


# -- files on disk ----------------------------------------------------------------------------------------
def write_durably(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` so that a kill or a power cut leaves the old file or the new one, never half of one.

    The content goes to ``<path>.partial`` in the same folder (created if missing), is flushed and
    ``os.fsync``-ed, moved over ``path`` with ``os.replace``, and the folder is fsynced so that the move
    itself is on disk.

    Args:
        path: the final file.
        write: writes the whole content into the open binary file it is given.

    Raises:
        OSError: the disk refused (full, read-only); ``path`` is then as it was.
    """
    partial = path.with_name(path.name + ".partial")
    for attempt in range(3):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            break
        except FileNotFoundError:
            # Another worker's ended trial removed the study's (then empty) folder, or those above it,
            # in between.
            if attempt == 2:
                raise
    os.replace(partial, path)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync; NTFS journals the rename itself
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def set_aside(path: Path, what: str, why: str, then: str) -> Path | None:
    """Move a damaged or foreign file (or folder) out of the way, with one warning line naming it.

    It is renamed ``<name>.rejected`` beside itself (replacing an older one of that name), so it is never
    read again but can be inspected; when even the rename fails it is deleted.

    Args:
        path: the file or folder.
        what: what it is, for the message ("checkpoint").
        why: why it cannot be used ("it is truncated"); one line.
        then: what happens instead ("the trial trains from its first epoch").

    Returns:
        Where it now is, or None when it was deleted (or had gone already).
    """
    rejected = path.with_name(path.name + REJECTED_SUFFIX)
    why = " ".join(why.split())
    why = why if len(why) <= 300 else why[:297] + "..."  # an exception's text may quote a whole array
    try:
        if rejected.is_dir() and not rejected.is_symlink():
            shutil.rmtree(rejected)
        os.replace(path, rejected)
        where: Path | None = rejected
        shown = f"set aside as {rejected.name}"
    except FileNotFoundError:
        return None
    except OSError:
        with contextlib.suppress(OSError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        where, shown = None, "deleted"
    print(f"warning: {what} {path} {why}: {shown}; {then}", file=sys.stderr, flush=True)
    return where


def identity_mismatch(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    """Why a file's identity ``saved`` is not ``wanted`` (None: it is).

    Args:
        saved: the identity written into the file (its ``study`` stamp first, then anything else).
        wanted: the identity of the work about to use it.

    Returns:
        One phrase for a warning ("belongs to another study (...)", "was written for other work (the seed
        differ)"), or None when both are equal.
    """
    if saved.get("study") != wanted.get("study"):
        other = saved.get("study")
        if isinstance(other, dict):
            return (f"belongs to another study ({other.get('name')!r}, row {other.get('id')}, created "
                    f"{other.get('created')})")
        return "belongs to no known study"
    labels = {"data": "the data", "seed": "the seed", "features": "the input width",
              "config": "the configuration", "initial_epoch": "the first epoch", "epochs": "the epochs"}
    differ = [labels.get(key, key) for key in sorted({*saved, *wanted}) if saved.get(key) != wanted.get(key)]
    return f"was written for other work ({', '.join(differ)} differ)" if differ else None



def claim_work_folder(folder: Path, stamp: Mapping[str, Any], what: str) -> None:
    """Set ``folder`` aside unless its ``study.json`` names the study ``stamp`` describes.

    A study's work folder is read back (a Hyperband round continues the weights of an earlier one), and
    its name is made from the study's name only: a folder left by a deleted database's study of that name,
    one without ``study.json`` or with an unreadable one must not be continued.

    Args:
        folder: the study's work folder (it may not exist: nothing to do).
        stamp: the study's identity (``study_stamp``, plus anything else that must match).
        what: what the folder holds, for the warning ("KerasTuner weights folder").
    """
    if not folder.exists():
        return
    try:
        found = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        why = f"has no {STUDY_FILE} saying which study it belongs to"
    except (OSError, ValueError) as error:
        why = f"has an unreadable {STUDY_FILE} ({type(error).__name__}: {error})"
    else:
        why = identity_mismatch(found, stamp) if isinstance(found, dict) else f"has a malformed {STUDY_FILE}"
    if why is not None:
        set_aside(folder, what, why, "its rounds train from their first epoch")


def stamp_work_folder(folder: Path, stamp: Mapping[str, Any]) -> None:
    """Create ``folder`` (if needed) with its ``study.json`` naming the study (see ``claim_work_folder``).

    Raises:
        OSError: the disk refused.
    """
    marker = folder / STUDY_FILE
    if not marker.exists():
        text = json.dumps(dict(stamp), sort_keys=True).encode("utf-8")
        write_durably(marker, lambda file: file.write(text))


def unusable_weights(path: Path) -> str | None:
    """Why the weights file ``path`` (arrays ``arr_0``, ``arr_1``, ... as ``numpy.savez`` writes them) cannot
    be continued.

    Args:
        path: the file.

    Returns:
        One phrase for a warning ("is empty (0 bytes)", "cannot be read (BadZipFile: ...)"), or None when
        it can be read and holds only numbers.
    """
    import numpy

    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        with numpy.load(path, allow_pickle=False) as arrays:  # read here; loaded for the model later
            weights = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    except Exception as error:  # noqa: BLE001 - a damaged zip or npy raises anything from EOFError to TypeError
        return f"cannot be read ({type(error).__name__}: {error})"
    if not weights:
        return "holds no weights"
    wrong = next((array.dtype for array in weights if array.dtype.kind not in "biuf"), None)
    return None if wrong is None else f"holds an array of type {wrong} where numbers belong"


def matching_weights(weights: list[Any], model: Any, path: Path) -> list[Any]:
    """``weights`` (read from ``path``) when their shapes are ``model.get_weights()``'s.

    The folder's ``study.json`` pins the study and the data, so only a file changed by hand gets here.

    Raises:
        ValueError: naming ``path`` and both shapes.
    """
    wanted = [tuple(array.shape) for array in model.get_weights()]
    found = [tuple(array.shape) for array in weights]
    if found != wanted:
        raise ValueError(f"KerasTuner weights file {path} holds arrays of shapes {found}, but this round's "
                         f"model has {wanted}")
    return weights
