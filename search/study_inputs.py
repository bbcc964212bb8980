"""What a study's trials train and are scored on: its search space and its data.

A new study loads them from what the user named; a resume (and a worker, a retrain) reloads them from
the study's record, and refuses inputs that differ from those the study was created with, since trials
on other inputs would not be comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.spaces import SearchSpace, space_from_dict
from hpsearch.storage import Storage, StudyRecord

from .errors import StudyMismatchError
from .seeds import data_split_seed, study_seed
from .settings import StudySettings
from .training.function_fit import NoData, is_no_data

if TYPE_CHECKING:
    from .data import Dataset, InMemoryData


def load_data(
    source: str | InMemoryData, target: str | None, task: str, seed: int, class_weight: str | None,
    sample_weight: str | None = None, drop: Sequence[str] = (),
) -> Dataset:
    """Load and split ``source`` (a builtin name, a file, or data given in memory) as a study uses it;
    see ``hpsearch.data``.

    Raises:
        DataError: the data cannot be read or does not fit ``target``, ``task``, the weights or ``drop``.
    """
    # Imported here: the data package imports numpy, which the commands that never load data need not pay.
    from .data import load_dataset

    return load_dataset(source, target=target, task=task, seed=seed, class_weight=class_weight,
                        sample_weight=sample_weight, drop=drop)


def load_study_dataset(study: StudyRecord, storage: Storage | None = None) -> Dataset:
    """Reload a study's data from its stored reference, refusing data that changed since.

    Args:
        study: the study as stored.
        storage: the study's store, which holds its data when that was given in memory (a DataFrame,
            arrays); needed for such a study only.

    Returns:
        The same rows, splits and preprocessing the study's trials trained on.

    Raises:
        DataError: the data cannot be read, or is kept in a store that was not given.
        StoredDataNotFoundError: the store lacks the study's data.
        StudyMismatchError: the data's fingerprint is not the one recorded when the study was created.
    """
    from .data import STORED, stored_data
    from .errors import DataError

    reference = study.dataset
    if is_no_data(reference):  # a training function's study: the function loads its own data
        return NoData(dict(reference), task=str(reference.get("task", "auto")))  # type: ignore[return-value]
    source: str | InMemoryData = reference["source"]
    if reference.get("kind") == STORED:
        if storage is None:
            raise DataError(f"study '{study.name}': its data ({source}) was given in memory and is kept in "
                            "its database; open it through that database")
        format_, payload = storage.get_data(str(reference.get("key")))
        source = stored_data(format_, payload, str(source), reference.get("target"))
    dataset = load_data(
        source, reference.get("target"), reference.get("task", "auto"),
        data_split_seed(study_seed(reference.get("seed"))), reference.get("class_weight"),
        reference.get("sample_weight"), reference.get("drop", ()),
    )
    if dataset.fingerprint != reference.get("fingerprint"):
        was, now = str(reference.get("fingerprint"))[:12], dataset.fingerprint[:12]
        raise StudyMismatchError(
            f"study '{study.name}': the data at {reference['source']} changed since the study was created "
            f"(fingerprint {was} is now {now}); its trials were scored on the old data"
        )
    return dataset


def study_space(study: StudyRecord) -> SearchSpace:
    """The search space stored with ``study``, named after the file it was first loaded from."""
    source = StudySettings.from_record(study.settings).space_source
    return space_from_dict(study.space, f"study '{study.name}'" if source is None else source)


def refuse_changed_inputs(
    study: StudyRecord,
    *,
    space: SearchSpace | None,
    engine: str | None,
    algorithm: str | None,
    data: str | InMemoryData | None,
    target: str | None,
    drop: Sequence[str] | None = None,
) -> None:
    """Resuming with other inputs would mix incomparable trials: name what changed and refuse.

    Each argument is what the user gave (None: not given, nothing to compare).

    Raises:
        StudyMismatchError: naming every input that differs from the study's.
    """
    changed: list[str] = []
    if engine is not None and engine != study.engine:
        changed.append(f"engine (study: {study.engine}, given: {engine})")
    if algorithm is not None and algorithm != study.algorithm:
        changed.append(f"algorithm (study: {study.algorithm}, given: {algorithm})")
    if space is not None and space.to_dict() != study.space:
        changed.append(f"search space ({_space_difference(study.space, space.to_dict())})")
    if data is not None and not _same_data_source(data, study.dataset):
        shown = getattr(data, "description", data)
        changed.append(f"data (study: {study.dataset.get('source')}, given: {shown})")
    if target is not None and target != study.dataset.get("target"):
        changed.append(f"target (study: {study.dataset.get('target')}, given: {target})")
    if drop is not None and sorted(drop) != sorted(study.dataset.get("drop", [])):
        changed.append(f"drop (study: {study.dataset.get('drop', [])}, given: {list(drop)})")
    if changed:
        raise StudyMismatchError(
            f"cannot resume study '{study.name}' with a different {'; '.join(changed)}; "
            "start a new study under another name instead"
        )


def _same_data_source(given: str | InMemoryData, reference: dict) -> bool:
    if is_no_data(reference):
        return False  # the study's training function loads its own data: any data given is other data
    if not isinstance(given, str):  # data given in memory: the same content is the same payload
        return reference.get("key") == given.key
    source = str(reference.get("source"))
    if reference.get("kind") == "builtin" or given == source:  # a builtin or bundled dataset's name
        return given == source
    return Path(given).expanduser().resolve() == Path(source)


def _space_difference(old: dict, new: dict) -> str:
    differences = []
    for section in ("task", "objective"):
        if old.get(section) != new.get(section):
            differences.append(f"{section} {old.get(section)!r} -> {new.get(section)!r}")
    for section in ("params", "fixed"):
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                differences.append(f"{section[:-1] if section == 'params' else section} '{key}'")
    return ", ".join(differences) or "changed"


def function_study_data(space: SearchSpace, task: str, given: dict[str, object]) -> NoData:
    """The data record of a new study whose space names a training function, which loads its own data.

    Args:
        space: the study's space (its ``train`` names the function).
        task: the study's task (``auto`` unless given).
        given: the data options the user gave, by option name (``--data``, ``--target``, ...), None or
            the default where not given.

    Raises:
        UsageError: a data option was given; it would be ignored, so it is refused instead.
    """
    from .errors import UsageError

    named = [option for option, value in given.items() if value is not None]
    if named:
        raise UsageError(f"space {space.source} names training function {space.train}, which loads its "
                         f"own data; leave out {' and '.join(named)}")
    return NoData.for_function(str(space.train), task)
