"""The driver's loop, against a real SQLite store and without Keras: a scripted search session proposes
stand-in tasks whose training returns an outcome, waits or raises, so each rule of the loop (claim, budget,
retries first, giving up, late finish, interrupt, trials in flight) is seen in the rows a user would read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hpsearch.driver import drive
from hpsearch.engines.session import SearchSession, Task
from hpsearch.errors import FitProcessLostError
from hpsearch.recovery import interrupt_trial
from hpsearch.retry_policy import MAX_ATTEMPTS, trials_to_retry
from hpsearch.settings import StudySettings
from hpsearch.storage import TrialState, open_storage
from hpsearch.training.context import Budget, BudgetTracker, RunContext
from hpsearch.training.recorder import TrialRecorder
from hpsearch.training.runner import Attempt, Proposal, RunResult, RunStatus, TrialOutcome

Train = Callable[[Attempt], TrialOutcome]


def _context(tmp_path: Path, *, budget: int | None = None, retries: bool = False) -> RunContext:
    """A run of a new (or, with ``retries``, the existing) study in ``tmp_path/hp.db``, wired as a run
    wires it; no space or data: the stand-in training needs neither."""
    storage = open_storage(f"sqlite:///{tmp_path / 'hp.db'}")
    try:
        study = storage.get_study("s")
    except Exception:  # noqa: BLE001 - a new study
        study = storage.create_study("s", engine="optuna", algorithm="random", objective="val_accuracy",
                                     direction="maximize", space={}, dataset={}, settings={}, versions={})
    recorder = TrialRecorder(storage, study)
    tracker = BudgetTracker(storage, study, Budget(trials=budget))
    recorder.on_finish(tracker.trial_finished)
    return RunContext(storage=storage, study=study, space=None, dataset=None,  # type: ignore[arg-type]
                      recorder=recorder, tracker=tracker, settings=StudySettings.from_record(study.settings),
                      retries=trials_to_retry(storage, study) if retries else [])


def _completes(value: float) -> Train:
    def train(attempt: Attempt) -> TrialOutcome:
        attempt.record_epoch(0, {"loss": 0.5, "val_accuracy": value})
        return TrialOutcome.complete(value, {"val_accuracy": value})

    return train


class Scripted(SearchSession):
    """Proposes ``n`` configurations (``{"n": i}``), queued retries first, then ends its plan; records
    every call the driver makes."""

    def __init__(self, count: int | None = None, *, train: Callable[[int], Train] | None = None,
                 batch: int = 1) -> None:
        self.count = count
        self.train = train or (lambda index: _completes(0.5 + index / 100))
        self.batch = batch
        self.index = 0
        self.queue: list[tuple[dict, int]] = []
        self.calls: list[str] = []
        self.learned: list[tuple[dict, RunStatus]] = []
        self.retried: list[int] = []

    def start(self, stopping: object) -> None:
        self.calls.append("start")

    def retry(self, trials: list) -> None:
        self.retried.extend(trial.number for trial in trials)
        self.queue.extend((dict(trial.params), trial.number) for trial in trials)

    def propose(self, room: int | None) -> list[Task] | None:
        tasks = []
        while len(tasks) < self.batch:
            if self.queue:
                params, retry_of = self.queue.pop(0)
                proposal = Proposal(params, retry_of=retry_of)
                tasks.append(Task(proposal, self.train(params["n"]), handle=params))
                continue
            if self.count is not None and self.index >= self.count:
                break
            params = {"n": self.index}
            tasks.append(Task(Proposal(params), self.train(self.index), handle=params))
            self.index += 1
        return tasks or None

    def learn(self, task: Task, result: RunResult) -> None:
        self.learned.append((task.handle, result.status))

    def abandon(self, task: Task) -> None:
        self.calls.append(f"abandon {task.handle['n']}")

    def interrupt(self, task: Task) -> None:
        self.calls.append(f"interrupt {task.handle['n']}")

    def finish(self) -> None:
        self.calls.append("finish")

    def close(self) -> None:
        self.calls.append("close")


def _rows(ctx: RunContext) -> list:
    return ctx.storage.list_trials(ctx.study.id)


def test_trials_are_claimed_until_the_budget_and_none_is_left_running(tmp_path):
    ctx = _context(tmp_path, budget=3)
    session = Scripted()  # proposes without end: only the budget stops it

    drive(ctx, session)

    trials = _rows(ctx)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 3
    assert [dict(trial.params) for trial in trials] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [status for _, status in session.learned] == [RunStatus.FINISHED] * 3
    assert session.calls == ["start", "finish", "close"]
    assert ctx.storage.running_trials(ctx.study.id) == []


def test_none_from_propose_ends_the_loop_below_the_budget(tmp_path):
    ctx = _context(tmp_path, budget=10)
    session = Scripted(2)

    drive(ctx, session)

    assert len(_rows(ctx)) == 2 and session.calls == ["start", "finish", "close"]


def test_a_trial_that_raises_fails_alone_and_the_search_goes_on(tmp_path):
    def train(index: int) -> Train:
        if index == 1:
            def broken(attempt: Attempt) -> TrialOutcome:
                raise ValueError("this configuration cannot be built")
            return broken
        return _completes(0.7)

    ctx = _context(tmp_path, budget=3)
    drive(ctx, Scripted(train=train))

    states = [(trial.state, trial.interrupted) for trial in _rows(ctx)]
    assert states == [(TrialState.COMPLETE, False), (TrialState.FAILED, False), (TrialState.COMPLETE, False)]
    assert "cannot be built" in _rows(ctx)[1].error


def test_interrupted_trials_are_retried_first_and_use_no_budget(tmp_path):
    first = _context(tmp_path, budget=3)

    def stopped_by_user(index: int) -> Train:
        if index != 1:
            return _completes(0.6)

        def train(attempt: Attempt) -> TrialOutcome:
            raise KeyboardInterrupt
        return train

    session = Scripted(train=stopped_by_user)
    with pytest.raises(KeyboardInterrupt):
        drive(first, session)
    assert session.calls == ["start", "interrupt 1", "close"], "told, never finished"
    assert first.storage.running_trials(first.study.id) == []

    again = _context(tmp_path, budget=3, retries=True)
    resumed = Scripted()
    resumed.index = 2  # the plan goes on where it was
    drive(again, resumed)

    trials = _rows(again)
    assert resumed.retried == [1]
    assert [(trial.number, dict(trial.params), trial.retry_of) for trial in trials[2:]] == [
        (2, {"n": 1}, 1), (3, {"n": 2}, None)], "the retry comes before new proposals"
    assert trials[1].interrupted and again.tracker.spent() == 3


def test_a_configuration_cut_short_max_attempts_times_is_given_up(tmp_path):
    ctx = _context(tmp_path, budget=5)
    storage, study = ctx.storage, ctx.study
    retry_of = None
    for _ in range(MAX_ATTEMPTS):  # three attempts of {"n": 0}, each killed
        trial = storage.start_trial(study.id, {"n": 0}, worker="gone:1", retry_of=retry_of, unique=True)
        interrupt_trial(storage, trial, "worker gone:1 stopped")
        retry_of = trial.number
    ctx = _context(tmp_path, budget=5, retries=True)
    trained = []

    def train(index: int) -> Train:
        def fit(attempt: Attempt) -> TrialOutcome:
            trained.append(index)
            return TrialOutcome.complete(0.5, {})
        return fit

    session = Scripted(2, train=train)
    session.index = 1  # {"n": 0} is the configuration given up
    drive(ctx, session)

    given_up = _rows(ctx)[MAX_ATTEMPTS]
    assert given_up.state is TrialState.FAILED and not given_up.interrupted and given_up.retry_of == 2
    assert given_up.error == ("given up after 3 interrupted attempts (#0, #1, #2): its worker died or was "
                              "stopped each time")
    assert trained == [1] and dict(_rows(ctx)[-1].params) == {"n": 1}, "only the new proposal trained"
    assert trials_to_retry(storage, study) == []


def test_a_configuration_cut_short_twice_is_still_retried(tmp_path):
    ctx = _context(tmp_path, budget=1)
    first = ctx.storage.start_trial(ctx.study.id, {"n": 0}, worker="gone:1", unique=True)
    interrupt_trial(ctx.storage, first, "worker gone:1 stopped")
    second = ctx.storage.start_trial(ctx.study.id, {"n": 0}, worker="gone:1", retry_of=0, unique=True)
    interrupt_trial(ctx.storage, second, "worker gone:1 stopped")

    drive(_context(tmp_path, budget=1, retries=True), Scripted(0))

    last = _rows(ctx)[-1]
    assert last.retry_of == 1 and last.state is TrialState.COMPLETE, "the third attempt trains"


def test_a_lost_fitting_process_has_its_configuration_fitted_again_at_once_until_given_up(tmp_path):
    def lost(index: int) -> Train:
        def train(attempt: Attempt) -> TrialOutcome:
            raise FitProcessLostError("fold process 4242 was killed")
        return train

    ctx = _context(tmp_path, budget=2)
    session = Scripted(1, train=lost)
    drive(ctx, session)

    trials = _rows(ctx)
    assert [(t.interrupted, t.retry_of) for t in trials] == [(True, None), (True, 0), (True, 1), (False, 2)]
    assert trials[-1].state is TrialState.FAILED and trials[-1].error.startswith("given up after 3")
    assert session.retried == [0, 1, 2]


def test_the_budget_used_up_by_another_worker_stops_this_one(tmp_path):
    ctx = _context(tmp_path, budget=2)

    class Racing(Scripted):
        def propose(self, room: int | None) -> list[Task] | None:
            if self.index == 1:  # another worker claims the last trial between our check and our claim
                ctx.storage.start_trial(ctx.study.id, {"n": "elsewhere"}, worker="other:1", budget=2)
            return super().propose(room)

    session = Racing()
    drive(ctx, session)

    assert [status for _, status in session.learned] == [RunStatus.FINISHED, RunStatus.BUDGET_REACHED]
    assert ctx.tracker.exhausted_budget and ctx.tracker.should_stop()
    assert [trial.worker for trial in ctx.storage.running_trials(ctx.study.id)] == ["other:1"]


def test_a_late_finish_of_a_trial_another_worker_failed_is_refused_and_the_search_goes_on(tmp_path, capsys):
    ctx = _context(tmp_path, budget=2)

    def train(index: int) -> Train:
        def fit(attempt: Attempt) -> TrialOutcome:
            if index == 0:  # recovery elsewhere took this worker for dead while it trained
                interrupt_trial(ctx.storage, attempt.record, "worker sent no heartbeat")
            return TrialOutcome.complete(0.9, {})
        return fit

    session = Scripted(train=train)
    drive(ctx, session)

    assert [status for _, status in session.learned][:2] == [RunStatus.SUPERSEDED, RunStatus.FINISHED]
    first = _rows(ctx)[0]
    assert first.state is TrialState.FAILED and first.interrupted, "the late result did not overwrite it"
    assert "late result of trial #0 (complete, value 0.9) refused" in capsys.readouterr().err


def test_ctrl_c_in_a_batch_interrupts_the_trial_abandons_the_rest_and_leaves_nothing_running(tmp_path):
    ctx = _context(tmp_path, budget=5)

    def train(index: int) -> Train:
        if index != 1:
            return _completes(0.5)

        def fit(attempt: Attempt) -> TrialOutcome:
            raise KeyboardInterrupt
        return fit

    session = Scripted(train=train, batch=3)
    with pytest.raises(KeyboardInterrupt):
        drive(ctx, session)

    assert session.calls == ["start", "interrupt 1", "abandon 2", "close"]
    trials = _rows(ctx)
    assert [(t.state, t.interrupted) for t in trials] == [(TrialState.COMPLETE, False),
                                                          (TrialState.FAILED, True)]
    assert ctx.storage.running_trials(ctx.study.id) == []


def test_an_empty_proposal_waits_for_the_tasks_in_flight(tmp_path):
    ctx = _context(tmp_path, budget=5)
    release = threading.Event()
    in_flight_when_empty: list[int] = []

    class InFlight(Scripted):
        threaded = True

        @property
        def width(self) -> int:
            return 3

        def propose(self, room: int | None) -> list[Task] | None:
            if self.index < 2:
                return super().propose(room)
            if len(self.learned) < 2:  # the rest of the plan depends on both results
                in_flight_when_empty.append(len(ctx.storage.running_trials(ctx.study.id)))
                release.set()
                return []
            return None

    def train(index: int) -> Train:
        def fit(attempt: Attempt) -> TrialOutcome:
            release.wait(10)
            return TrialOutcome.complete(0.5, {})
        return fit

    session = InFlight(train=train)
    drive(ctx, session)

    assert in_flight_when_empty and in_flight_when_empty[0] == 2, "both trials claimed and in flight"
    assert len(in_flight_when_empty) <= 2, "the driver waits on the trials instead of asking again"
    assert [trial.state for trial in _rows(ctx)] == [TrialState.COMPLETE] * 2
    assert session.calls == ["start", "finish", "close"]


def test_ctrl_c_in_one_trial_in_flight_stops_the_others_and_leaves_nothing_running(tmp_path):
    ctx = _context(tmp_path, budget=5)
    both_claimed = threading.Event()

    class InFlight(Scripted):
        threaded = True

        @property
        def width(self) -> int:
            return 2

        def start(self, stopping: object) -> None:
            super().start(stopping)
            self.stopping = stopping

    session = InFlight(2, train=lambda index: train(index))

    def train(index: int) -> Train:
        def fit(attempt: Attempt) -> TrialOutcome:
            if index == 0:
                both_claimed.wait(10)
                raise KeyboardInterrupt  # Ctrl-C reaches the first trial
            both_claimed.set()
            while True:  # as a fold or Dask task waits: until the run says stop
                session.stopping.raise_if_set()
                threading.Event().wait(0.01)
        return fit

    with pytest.raises(KeyboardInterrupt):
        drive(ctx, session)

    assert session.calls == ["start", "interrupt 0", "interrupt 1", "close"]
    assert [(t.state, t.interrupted) for t in _rows(ctx)] == [(TrialState.FAILED, True)] * 2
    assert ctx.storage.running_trials(ctx.study.id) == []
