"""The repository API of storage/, run against every backend (SQLite always; PostgreSQL when
HPSEARCH_TEST_POSTGRES_URL names a database the tests may wipe the hp_ tables of)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hpsearch.storage import (
    BudgetReachedError,
    DuplicateTrialError,
    Storage,
    StorageError,
    StoredDataNotFoundError,
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialNotRunningError,
    TrialState,
    open_storage,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL, reason="set HPSEARCH_TEST_POSTGRES_URL to test PostgreSQL"
        ),
    ),
]


def _wipe_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("DROP TABLE IF EXISTS hp_models, hp_trial_epochs, hp_trials, hp_studies, hp_stored_data, "
                 "hp_alembic_version")
        )
    engine.dispose()


def _own_database(url: str) -> str:
    """A database of this pytest worker's own on the test server, created on first use.

    The tests below wipe the hp_ tables. pytest-xdist runs two workers at once, and its ``xdist_group``
    mark cannot keep these tests in one worker (pytest-xdist 3.8 renames ``item._nodeid``, which pytest
    9 no longer reads), so each worker wipes only its own database, never the one the other worker's
    PostgreSQL tests use. A server whose user may not create databases gets the given one.
    """
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import DBAPIError

    name = f"hpsearch_repository_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    base = make_url(url)
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            known = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if known.first() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError:
        return url
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hp.db'}"
    assert POSTGRES_URL
    url = _own_database(POSTGRES_URL)
    _wipe_postgres(url)
    return url


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    store = open_storage(storage_url)
    yield store
    store.close()


def make_study(storage: Storage, name: str = "s", direction: str = "maximize", **overrides: Any):
    fields: dict[str, Any] = dict(
        engine="optuna",
        algorithm="tpe",
        objective="val_accuracy" if direction == "maximize" else "val_loss",
        direction=direction,
        space={"params": {"n_hidden": {"type": "int", "low": 1, "high": 4}}},
        dataset={"name": "digits", "fingerprint": "abc"},
        settings={"trials": 10},
        versions={"hpsearch": "0.1.0"},
    )
    fields.update(overrides)
    return storage.create_study(name, **fields)


def test_create_and_get_study(storage: Storage) -> None:
    created = make_study(storage)
    got = storage.get_study("s")
    assert got == created
    assert got.space == {"params": {"n_hidden": {"type": "int", "low": 1, "high": 4}}}
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == UTC.utcoffset(None)
    with pytest.raises(AttributeError):
        got.name = "other"  # type: ignore[misc]


def test_duplicate_study_is_refused(storage: Storage) -> None:
    make_study(storage)
    with pytest.raises(
        StudyExistsError, match=r"study 's' already exists in .*hpsearch resume s.*--resume"
    ) as e:
        make_study(storage)
    assert e.value.exit_code == 2


def test_missing_study_lists_existing_names(storage: Storage) -> None:
    with pytest.raises(StudyNotFoundError, match="there are no studies yet") as e:
        storage.get_study("nope")
    assert e.value.exit_code == 2
    make_study(storage, "alpha")
    make_study(storage, "beta")
    with pytest.raises(StudyNotFoundError, match="existing studies: alpha, beta"):
        storage.get_study("nope")


def test_update_settings_merges_and_touch_moves_updated_at(storage: Storage) -> None:
    study = make_study(storage)
    updated = storage.update_study_settings(study.id, {"timeout": 60})
    assert updated.settings == {"trials": 10, "timeout": 60}
    time.sleep(0.01)
    storage.touch_study(study.id)
    assert storage.get_study("s").updated_at > updated.updated_at


def test_trial_lifecycle(storage: Storage) -> None:
    study = make_study(storage)
    trial = storage.start_trial(study.id, {"n_hidden": 2}, worker="host:1", engine_trial_id="7")
    assert trial.state is TrialState.RUNNING
    assert (trial.number, trial.ended_at, trial.duration_s, trial.epochs_run) == (0, None, None, 0)
    assert storage.running_trials(study.id) == [trial]

    storage.set_engine_trial_id(trial.id, "optuna-7")
    storage.record_epoch(trial.id, 0, {"loss": 0.9, "val_accuracy": 0.5})
    storage.record_epoch(trial.id, 1, {"loss": 0.5, "val_accuracy": 0.7})
    finished = storage.finish_trial(
        trial.id, TrialState.COMPLETE, value=0.7, metrics={"val_accuracy": 0.7}, peak_memory_mb=123.5
    )
    assert finished.state is TrialState.COMPLETE
    assert finished.engine_trial_id == "optuna-7"
    assert finished.epochs_run == 2
    assert finished.ended_at is not None and finished.ended_at >= finished.started_at
    assert finished.duration_s is not None and finished.duration_s >= 0
    assert finished.peak_memory_mb == 123.5
    assert storage.running_trials(study.id) == []

    loaded = storage.get_trial(study.id, 0, with_epochs=True)
    assert loaded.curves == {"loss": [0.9, 0.5], "val_accuracy": [0.5, 0.7]}
    assert loaded.params == {"n_hidden": 2}
    assert storage.get_trial(study.id, 0).curves == {}
    assert storage.count_trials(study.id) == {
        TrialState.RUNNING: 0,
        TrialState.COMPLETE: 1,
        TrialState.PRUNED: 0,
        TrialState.FAILED: 0,
    }


def test_retry_and_parent_links(storage: Storage) -> None:
    study = make_study(storage)
    first = storage.start_trial(study.id, {"a": 1}, worker="h:1")
    storage.finish_trial(first.id, TrialState.FAILED, error="killed", interrupted=True)
    retry = storage.start_trial(study.id, {"a": 1}, worker="h:2", retry_of=first.number, parent_number=None)
    child = storage.start_trial(study.id, {"a": 1}, worker="h:2", parent_number=retry.number)
    assert (retry.retry_of, child.parent_number) == (0, 1)
    failed = storage.get_trial(study.id, 0)
    assert (failed.error, failed.interrupted, failed.value) == ("killed", True, None)


def test_trial_numbers_are_sequential_per_study(storage: Storage) -> None:
    a = make_study(storage, "a")
    b = make_study(storage, "b")
    numbers_a = [storage.start_trial(a.id, {}, worker="h:1").number for _ in range(5)]
    numbers_b = [storage.start_trial(b.id, {}, worker="h:1").number for _ in range(3)]
    assert numbers_a == [0, 1, 2, 3, 4]
    assert numbers_b == [0, 1, 2]


def test_missing_trial_and_study_ids(storage: Storage) -> None:
    study = make_study(storage)
    with pytest.raises(TrialNotFoundError, match="study 's' has no trial 3 \\(no trials yet\\)") as e:
        storage.get_trial(study.id, 3)
    assert e.value.exit_code == 2
    storage.start_trial(study.id, {}, worker="h:1")
    with pytest.raises(TrialNotFoundError, match="trials 0..0"):
        storage.get_trial(study.id, 3)
    with pytest.raises(TrialNotFoundError):
        storage.record_epoch(999, 0, {})
    with pytest.raises(TrialNotFoundError):
        storage.finish_trial(999, TrialState.FAILED)
    with pytest.raises(StudyNotFoundError):
        storage.start_trial(999, {}, worker="h:1")


def test_duplicate_epoch_is_an_error(storage: Storage) -> None:
    study = make_study(storage)
    trial = storage.start_trial(study.id, {}, worker="h:1")
    storage.record_epoch(trial.id, 0, {"loss": 1.0})
    with pytest.raises(StorageError, match="epoch 0 .* already recorded"):
        storage.record_epoch(trial.id, 0, {"loss": 1.0})


def test_non_finite_metrics_round_trip(storage: Storage) -> None:
    study = make_study(storage, direction="minimize")
    trial = storage.start_trial(study.id, {"learning_rate": 0.1}, worker="h:1")
    storage.record_epoch(trial.id, 0, {"loss": math.nan, "val_loss": math.inf})
    storage.record_epoch(trial.id, 1, {"loss": -math.inf, "val_loss": 1.5})
    finished = storage.finish_trial(
        trial.id, TrialState.FAILED, value=math.nan, metrics={"loss": math.nan}, error="NaN loss"
    )
    assert finished.value is None
    assert math.isnan(finished.metrics["loss"])
    loaded = storage.get_trial(study.id, trial.number, with_epochs=True)
    assert math.isnan(loaded.metrics["loss"])
    assert math.isnan(loaded.curves["loss"][0]) and loaded.curves["loss"][1] == -math.inf
    assert loaded.curves["val_loss"] == [math.inf, 1.5]
    # A string that looks like "nan" in params is a real choice, not a number.
    other = storage.start_trial(study.id, {"activation": "nan"}, worker="h:1")
    assert storage.get_trial(study.id, other.number).params == {"activation": "nan"}


def test_curves_align_missing_metrics(storage: Storage) -> None:
    study = make_study(storage)
    trial = storage.start_trial(study.id, {}, worker="h:1")
    storage.record_epoch(trial.id, 0, {"loss": 1.0})
    storage.record_epoch(trial.id, 1, {"loss": 0.5, "lr": 0.01})
    assert storage.get_trial(study.id, 0, with_epochs=True).curves == {"loss": [1.0, 0.5], "lr": [None, 0.01]}


def _finished(storage: Storage, study_id: int, state: TrialState, value: float | None) -> int:
    trial = storage.start_trial(study_id, {"v": value}, worker="h:1")
    storage.finish_trial(trial.id, state, value=value)
    return trial.number


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_best_trials_follow_direction_and_skip_failed(storage: Storage, direction: str) -> None:
    study = make_study(storage, direction=direction)
    _finished(storage, study.id, TrialState.COMPLETE, 0.5)  # 0
    _finished(storage, study.id, TrialState.FAILED, 0.0)  # 1: failed, never best
    _finished(storage, study.id, TrialState.FAILED, 9.0)  # 2
    _finished(storage, study.id, TrialState.COMPLETE, None)  # 3: no value
    _finished(storage, study.id, TrialState.COMPLETE, 0.2)  # 4
    _finished(storage, study.id, TrialState.COMPLETE, 0.8)  # 5
    _finished(storage, study.id, TrialState.COMPLETE, 0.2)  # 6: ties with 4, loses on number
    _finished(storage, study.id, TrialState.PRUNED, 0.1)  # 7
    storage.start_trial(study.id, {}, worker="h:1")  # 8: running
    best = [t.number for t in storage.best_trials(study.id, k=10)]
    assert best == ([4, 6, 0, 5] if direction == "minimize" else [5, 0, 4, 6])
    assert [t.number for t in storage.best_trials(study.id)] == best[:1]


def test_best_trials_of_empty_study(storage: Storage) -> None:
    study = make_study(storage)
    assert storage.best_trials(study.id, k=3) == []
    with pytest.raises(StudyNotFoundError):
        storage.best_trials(999)


def test_list_trials_filters_orders_and_limits(storage: Storage) -> None:
    study = make_study(storage)
    for value in [0.3, None, 0.9, 0.1]:
        _finished(storage, study.id, TrialState.COMPLETE, value)
    _finished(storage, study.id, TrialState.FAILED, None)
    storage.start_trial(study.id, {}, worker="h:1")

    def numbers(**kwargs: Any) -> list[int]:
        return [t.number for t in storage.list_trials(study.id, **kwargs)]

    assert numbers() == [0, 1, 2, 3, 4, 5]
    assert numbers(descending=True, limit=2) == [5, 4]
    assert numbers(order="value") == [3, 0, 2, 1, 4, 5]
    assert numbers(order="value", descending=True) == [2, 0, 3, 1, 4, 5]
    assert numbers(order="value", descending=True, limit=2) == [2, 0]
    assert numbers(states=[TrialState.COMPLETE], order="value", descending=True) == [2, 0, 3, 1]
    assert numbers(states=[TrialState.FAILED, TrialState.RUNNING]) == [4, 5]
    assert numbers(order="started") == [0, 1, 2, 3, 4, 5]
    assert numbers(order="duration")[-1] == 5  # the running trial has no duration yet
    with pytest.raises(ValueError, match="order must be one of"):
        storage.list_trials(study.id, order="speed")


def test_list_trials_with_epochs_loads_every_curve(storage: Storage) -> None:
    study = make_study(storage)
    for n in range(3):
        trial = storage.start_trial(study.id, {}, worker="h:1")
        for epoch in range(n + 1):
            storage.record_epoch(trial.id, epoch, {"loss": float(epoch)})
    listed = storage.list_trials(study.id, with_epochs=True, descending=True, limit=2)
    assert [(t.number, t.curves) for t in listed] == [
        (2, {"loss": [0.0, 1.0, 2.0]}),
        (1, {"loss": [0.0, 1.0]}),
    ]
    assert all(t.curves == {} for t in storage.list_trials(study.id))


def test_list_trials_with_epochs_many(storage: Storage) -> None:
    study = make_study(storage)
    for _ in range(520):  # past the size where curves are fetched through a subquery
        trial = storage.start_trial(study.id, {}, worker="h:1")
    storage.record_epoch(trial.id, 0, {"loss": 2.0})
    listed = storage.list_trials(study.id, with_epochs=True)
    assert len(listed) == 520 and listed[-1].curves == {"loss": [2.0]} and listed[0].curves == {}


def test_list_studies_summaries(storage: Storage) -> None:
    assert storage.list_studies() == []
    low = make_study(storage, "low", direction="minimize")
    high = make_study(storage, "high", direction="maximize")
    make_study(storage, "empty")
    for value in [0.4, 0.2]:
        _finished(storage, low.id, TrialState.COMPLETE, value)
        _finished(storage, high.id, TrialState.COMPLETE, value)
    _finished(storage, high.id, TrialState.FAILED, 0.9)
    running = storage.start_trial(low.id, {}, worker="h:1")
    storage.record_epoch(running.id, 0, {"loss": 1.0})
    storage.record_epoch(running.id, 1, {"loss": 1.0})

    summaries = {s.study.name: s for s in storage.list_studies()}
    assert list(summaries) == ["low", "high", "empty"]
    assert summaries["low"].best_value == 0.2 and summaries["high"].best_value == 0.4
    assert summaries["low"].counts[TrialState.RUNNING] == 1
    assert summaries["low"].n_trials == 3 and summaries["low"].epochs_total == 2
    assert summaries["high"].counts == {
        TrialState.RUNNING: 0,
        TrialState.COMPLETE: 2,
        TrialState.PRUNED: 0,
        TrialState.FAILED: 1,
    }
    assert summaries["high"].seconds_total >= 0
    assert summaries["empty"].best_value is None and summaries["empty"].n_trials == 0


def test_models(storage: Storage) -> None:
    study = make_study(storage)
    assert storage.list_models(study.id) == []
    model = storage.add_model(
        study.id,
        trial_number=3,
        path="runs/s/best.keras",
        sha256="ab" * 32,
        test_metrics={"accuracy": 0.97, "loss": math.nan},
        settings={"early_stopping": {"patience": 5}},
        epochs_run=17,
        stop_reason="early_stopping",
    )
    [listed] = storage.list_models(study.id)
    assert listed.id == model.id and listed.trial_number == 3 and listed.epochs_run == 17
    assert listed.settings == {"early_stopping": {"patience": 5}}
    assert math.isnan(listed.test_metrics["loss"]) and listed.created_at.tzinfo is not None
    with pytest.raises(StudyNotFoundError):
        storage.add_model(
            999,
            trial_number=0,
            path="x",
            sha256="0",
            test_metrics={},
            settings={},
            epochs_run=1,
            stop_reason=None,
        )


def test_numpy_metric_values_are_stored() -> None:
    # Keras hands back numpy floats; they must not need converting by every caller.
    np = pytest.importorskip("numpy")
    from hpsearch.storage.tables import encode_json

    assert encode_json({"a": np.float32(0.5), "b": [np.float64("nan")]}) == {"a": 0.5, "b": ["nan"]}


# -- several processes ------------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from hpsearch.storage import StudyExistsError, open_storage

    url, task, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    storage = open_storage(url)
    while not go.exists():  # start together, so the writes really overlap
        time.sleep(0.005)
    if task == "create":
        try:
            storage.create_study("race", engine="optuna", algorithm="tpe", objective="loss",
                                 direction="minimize", space={}, dataset={}, settings={}, versions={})
            print("created")
        except StudyExistsError:
            print("exists")
    else:
        study = storage.get_study("shared")
        for _ in range(40):
            trial = storage.start_trial(study.id, {}, worker=f"test:{os.getpid()}")
            storage.record_epoch(trial.id, 0, {"loss": 1.0})
            storage.finish_trial(trial.id, "COMPLETE", value=float(trial.number))
        print("done")
    storage.close()
    """
)


def _run_workers(url: str, task: str, tmp_path: Path, n: int = 2) -> list[str]:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, task, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    time.sleep(1.0)  # let both import and open before the start signal
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


@pytest.mark.slow
def test_two_processes_start_trials_concurrently(storage: Storage, storage_url: str, tmp_path: Path) -> None:
    study = make_study(storage, "shared")
    assert _run_workers(storage_url, "trials", tmp_path) == ["done", "done"]
    trials = storage.list_trials(study.id)
    assert [t.number for t in trials] == list(range(80))
    assert all(t.state is TrialState.COMPLETE and t.epochs_run == 1 for t in trials)
    assert len({t.worker for t in trials}) == 2


@pytest.mark.slow
def test_two_processes_racing_create_study(storage: Storage, storage_url: str, tmp_path: Path) -> None:
    assert sorted(_run_workers(storage_url, "create", tmp_path)) == ["created", "exists"]
    assert [s.study.name for s in storage.list_studies()] == ["race"]


def test_a_finished_trial_stays_finished(storage: Storage) -> None:
    study = make_study(storage)
    trial = storage.start_trial(study.id, {"n": 1}, worker="h:1")
    storage.finish_trial(trial.id, TrialState.FAILED, error="interrupted: no heartbeat", interrupted=True)
    # The paused worker comes back: its epoch, its partial results and its finish are all refused.
    with pytest.raises(TrialNotRunningError, match="already FAILED"):
        storage.record_epoch(trial.id, 0, {"loss": 1.0})
    with pytest.raises(TrialNotRunningError):
        storage.merge_trial_metrics(trial.id, {"split0_test_score": 0.5})
    with pytest.raises(TrialNotRunningError):
        storage.finish_trial(trial.id, TrialState.COMPLETE, value=0.9, epochs=[(0, {"loss": 1.0}, None)])
    kept = storage.get_trial(study.id, trial.number, with_epochs=True)
    assert (kept.state, kept.value, kept.interrupted, kept.curves) == (TrialState.FAILED, None, True, {})


def test_epochs_written_in_batches_and_with_the_finish(storage: Storage) -> None:
    study = make_study(storage)
    trial = storage.start_trial(study.id, {}, worker="h:1")
    storage.record_epochs(trial.id, [(0, {"loss": 3.0}, None), (1, {"loss": 2.0}, None)])
    folded = storage.start_trial(study.id, {"n": 2}, worker="h:1")
    storage.record_epochs(folded.id, [(0, {"loss": 1.0}, 0), (0, {"loss": 1.5}, 1), (1, {"loss": 0.5}, 0)])
    done = storage.finish_trial(trial.id, TrialState.COMPLETE, value=1.0, epochs=[(2, {"loss": 1.0}, None)])
    assert done.epochs_run == 3
    assert storage.get_trial(study.id, 0, with_epochs=True).curves == {"loss": [3.0, 2.0, 1.0]}
    curves = storage.get_trial(study.id, 1, with_epochs=True).curves
    assert curves == {"split0_loss": [1.0, 0.5], "split1_loss": [1.5, None]}


def test_claims_respect_the_budget_and_refuse_repeated_configurations(storage: Storage) -> None:
    study = make_study(storage)
    first = storage.start_trial(study.id, {"n": 1}, worker="h:1", budget=2, unique=True)
    with pytest.raises(DuplicateTrialError, match="trial #0 \\(RUNNING\\)"):
        storage.start_trial(study.id, {"n": 1}, worker="h:2", budget=2, unique=True)
    storage.start_trial(study.id, {"n": 2}, worker="h:2", budget=2, unique=True)
    with pytest.raises(BudgetReachedError):  # two running trials use the budget of two
        storage.start_trial(study.id, {"n": 3}, worker="h:1", budget=2, unique=True)
    # An interrupted trial gives its budget back and may be retried, by a retry only (one at a time).
    storage.finish_trial(first.id, TrialState.FAILED, interrupted=True, error="interrupted")
    with pytest.raises(DuplicateTrialError):
        storage.start_trial(study.id, {"n": 1}, worker="h:1", budget=2, unique=True)
    retry = storage.start_trial(study.id, {"n": 1}, worker="h:1", budget=2, unique=True, retry_of=0)
    assert retry.number == 2 and retry.retry_of == 0
    with pytest.raises(DuplicateTrialError):  # a second retry while the first one runs
        storage.start_trial(study.id, {"n": 1}, worker="h:2", budget=3, unique=True, retry_of=0)
    assert storage.budget_usage(study.id) == (0, 2)


def test_copied_trials_keep_their_results_and_use_no_budget(storage: Storage) -> None:
    """``--warm-start`` copies: a COMPLETE trial with the source's value, metrics and curves, naming the
    original (also through a copy of a copy), outside the budget, and a duplicate for its configuration."""
    from hpsearch.storage import TrialCopy

    source, middle, target = (make_study(storage, name) for name in ("src", "mid", "dst"))
    trained = storage.start_trial(source.id, {"n": 1}, worker="h:1")
    storage.record_epochs(trained.id, [(0, {"val_accuracy": 0.5}, None), (1, {"val_accuracy": 0.7}, None)])
    original = storage.finish_trial(trained.id, TrialState.COMPLETE, value=0.7, metrics={"val_accuracy": 0.7})
    [first] = storage.copy_trials(middle.id, [TrialCopy(original, "src", {"n": 1})])
    [second] = storage.copy_trials(target.id, [TrialCopy(first, "mid", {"n": 1})])
    assert second.copied_from == "src #0" and first.copied_from == "src #0"  # the original, not the copy
    assert (second.state, second.value, second.metrics, second.epochs_run) == (
        TrialState.COMPLETE, 0.7, {"val_accuracy": 0.7}, 2)
    assert storage.get_trial(target.id, 0, with_epochs=True).curves == {"val_accuracy": [0.5, 0.7]}
    assert [t.number for t in storage.copied_trials(target.id)] == [0]
    assert storage.budget_usage(target.id) == (0, 0)
    with pytest.raises(DuplicateTrialError):
        storage.start_trial(target.id, {"n": 1}, worker="h:1", budget=1, unique=True)
    fresh = storage.start_trial(target.id, {"n": 2}, worker="h:1", budget=1, unique=True)
    assert fresh.number == 1 and not fresh.copied
    with pytest.raises(BudgetReachedError):
        storage.start_trial(target.id, {"n": 3}, worker="h:1", budget=1, unique=True)
    summary = {s.study.name: s for s in storage.list_studies()}["dst"]
    assert (summary.n_trials, summary.copied, summary.epochs_total) == (2, 1, 0)


def test_stored_data_is_kept_once_by_content(storage: Storage) -> None:
    payload = bytes(range(256)) * 64
    key = storage.put_data("npz", payload)
    assert storage.put_data("npz", payload) == key, "the same bytes are stored once, under one key"
    assert storage.get_data(key) == ("npz", payload)
    with pytest.raises(StoredDataNotFoundError, match=r"holds no stored data with key 000000000000"):
        storage.get_data("0" * 64)
