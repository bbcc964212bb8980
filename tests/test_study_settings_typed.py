"""StudySettings: the typed settings of a study, read from and written to its JSON object unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hpsearch.engines.base import ENGINE_OPTIONS
from hpsearch.engines.registry import get_engine
from hpsearch.settings import CHECKPOINT_DIR_KEY, ENVIRONMENT_KEY, WARM_START_KEY, StudySettings
from hpsearch.storage import open_storage
from hpsearch.study_options import RunOptions
from hpsearch.study_settings import new_study_settings, stored_budget
from hpsearch.training.checkpoints import CHECKPOINT_DIR_SETTING
from hpsearch.training.reproducibility import ENVIRONMENT_SETTING
from hpsearch.warm_start import WARM_START_SETTING

#: A study's settings as the code before StudySettings stored them: created with --jobs and --cv (in
#: ENGINE_OPTIONS order), --warm-start, then resumed with a new --pruner (appended), then the KerasTuner
#: oracle's state written in (a key no field reads).
OLD_RECORD = {
    "algorithm": "random", "seed": 7, "trials": 4, "timeout_s": None, "max_failures": 5,
    "class_weight": None, "stale_after_s": 60.0, "checkpoint_dir": None, "cv": 3, "jobs": 1,
    "warm_start": ["a", "b"], "space_source": "tiny.yaml",
    "environment": {"backend": "tensorflow", "determinism": {"cpus": 2}},
    "pruner": "none", "keras_tuner_state": {"oracle": [1, 2]},
}
#: Settings of a study from before ``stale_after_s`` and ``checkpoint_dir`` were recorded.
OLDEST_RECORD = {"algorithm": "tpe", "seed": 0, "trials": 3, "timeout_s": 30, "max_failures": 2,
                 "class_weight": "balanced", "space_source": "default"}


def _json(record: dict) -> str:
    return json.dumps(record)


@pytest.mark.parametrize("record", [OLD_RECORD, OLDEST_RECORD, {}])
def test_a_stored_record_round_trips_byte_for_byte(record: dict) -> None:
    settings = StudySettings.from_record(record)
    assert _json(settings.to_record()) == _json(record)
    assert StudySettings.from_record(settings.to_record()) == settings


def test_fields_read_the_record_and_defaults_fill_what_it_lacks() -> None:
    settings = StudySettings.from_record(OLD_RECORD)
    read = (settings.algorithm, settings.seed, settings.trials, settings.cv, settings.jobs)
    assert read == ("random", 7, 4, 3, 1)
    assert settings.warm_start == ("a", "b")
    assert settings.environment == {"backend": "tensorflow", "determinism": {"cpus": 2}}
    assert settings.pruner == "none"
    # A key no field reads (engine state, a newer version's key) is kept as stored, in place.
    assert settings.extra == {"keras_tuner_state": {"oracle": [1, 2]}}
    oldest = StudySettings.from_record(OLDEST_RECORD)
    assert (oldest.stale_after_s, oldest.checkpoint_dir, oldest.backend) == (None, None, None)
    empty = StudySettings.from_record({})
    assert (empty.seed, empty.max_failures, empty.algorithm) == (0, 5, None)


def test_value_of_gives_exactly_the_stored_value() -> None:
    settings = StudySettings.from_record(OLDEST_RECORD)
    assert settings.value_of("algorithm") == "tpe"
    assert settings.to_record() == OLDEST_RECORD and list(settings.to_record()) == list(OLDEST_RECORD)
    with pytest.raises(KeyError):
        settings.value_of("pruner")  # never recorded: the field's default applies, the record has no key
    assert StudySettings.from_record(OLD_RECORD).value_of("warm_start") == ["a", "b"]


def test_with_changes_merges_as_the_stored_json_does() -> None:
    settings = StudySettings.from_record(OLDEST_RECORD)
    changed = settings.with_changes({"trials": 9, "jobs": 2})
    assert _json(changed.to_record()) == _json({**OLDEST_RECORD, "trials": 9, "jobs": 2})
    assert (changed.trials, changed.jobs, settings.trials) == (9, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.trials = 1  # type: ignore[misc]


def test_a_new_study_records_what_it_recorded_before(tmp_path: Path) -> None:
    """``new_study_settings`` writes the JSON the dict-building code wrote, key order included."""
    options = RunOptions(seed=3, trials=2, pruner="none", checkpoint_dir=str(tmp_path),
                         extra={"pack": 2, "backend": "tensorflow"})
    settings = new_study_settings(options, get_engine("optuna"))
    expected = {
        "algorithm": "tpe", "seed": 3, "trials": 2, "timeout_s": None, "max_failures": 5,
        "class_weight": None, "stale_after_s": 60.0, "checkpoint_dir": str(tmp_path.resolve()),
        "pack": 2, "backend": "tensorflow", "pruner": "none",
    }
    assert _json(settings.to_record()) == _json(expected)
    assert settings.engine_options == {"pack": 2, "backend": "tensorflow", "pruner": "none"}
    budget = stored_budget(settings, None)
    assert (budget.trials, budget.max_consecutive_failures) == (2, 5)
    assert stored_budget(expected, None).trials == 2  # a stored object reads the same


def test_settings_survive_the_store_in_both_directions(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "s.db"))
    common = dict(engine="optuna", algorithm="random", objective="val_loss", direction="minimize",
                  space={}, dataset={}, versions={})
    # An old study's settings (written as a plain dict) load as StudySettings ...
    old = storage.create_study("old", settings=dict(OLD_RECORD), **common)
    loaded = StudySettings.from_record(storage.get_study("old").settings)
    assert _json(loaded.to_record()) == _json(OLD_RECORD) and loaded == StudySettings.from_record(OLD_RECORD)
    # ... and a study written from StudySettings reads back as the same dict the old code read.
    new = StudySettings.from_record(OLDEST_RECORD).with_changes({"jobs": 2})
    storage.create_study("new", settings=new.to_record(), **common)
    assert _json(storage.get_study("new").settings) == _json({**OLDEST_RECORD, "jobs": 2})
    merged = storage.update_study_settings(old.id, {"trials": 8})
    assert _json(merged.settings) == _json(StudySettings.from_record(OLD_RECORD).with_changes(
        {"trials": 8}).to_record())


def test_keys_agree_with_the_modules_that_name_them() -> None:
    assert CHECKPOINT_DIR_SETTING == CHECKPOINT_DIR_KEY
    assert ENVIRONMENT_SETTING == ENVIRONMENT_KEY and WARM_START_SETTING == WARM_START_KEY
    every = StudySettings.from_record({key: 1 for key in (*ENGINE_OPTIONS, "pruner")})
    assert every.engine_options == {key: 1 for key in (*ENGINE_OPTIONS, "pruner")}
    assert every.extra == {}


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(TypeError):
        StudySettings.from_record([("seed", 1)])  # type: ignore[arg-type]
