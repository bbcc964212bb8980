"""The trial runner's rules, against a real SQLite store and without Keras: the engine's training function
is a stand-in that returns an outcome, reports epochs or raises, so each rule is seen in the rows a user
would read (``hpsearch trials``) rather than through a model's training."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hpsearch.recovery import fail_abandoned_trials
from hpsearch.retry_policy import trials_to_retry
from hpsearch.settings import StudySettings
from hpsearch.storage import Storage, StudyRecord, TrialState, open_storage
from hpsearch.training.context import Budget, BudgetTracker, RunContext
from hpsearch.training.recorder import TrialRecorder, current_worker
from hpsearch.training.runner import USER_INTERRUPT, Attempt, Proposal, RunStatus, TrialOutcome, TrialRunner

CONFIG_A = {"n_neurons": 8, "learning_rate": 0.01}
CONFIG_B = {"n_neurons": 16, "learning_rate": 0.01}
CONFIG_C = {"n_neurons": 32, "learning_rate": 0.01}


def _runner(tmp_path: Path, *, budget: int | None = None, settings: dict | None = None) -> TrialRunner:
    """A runner for a new study in ``tmp_path/hp.db``, wired as a run wires it (the budget tracker hears
    of every finished trial); no space or data: the stand-in training needs neither."""
    storage = open_storage(f"sqlite:///{tmp_path / 'hp.db'}")
    study = storage.create_study("s", engine="optuna", algorithm="random", objective="val_accuracy",
                                 direction="maximize", space={}, dataset={}, settings=settings or {},
                                 versions={})
    recorder = TrialRecorder(storage, study)
    tracker = BudgetTracker(storage, study, Budget(trials=budget))
    recorder.on_finish(tracker.trial_finished)
    return TrialRunner(RunContext(storage=storage, study=study, space=None, dataset=None,  # type: ignore[arg-type]
                                  recorder=recorder, tracker=tracker,
                                  settings=StudySettings.from_record(study.settings)))


def _store(runner: TrialRunner) -> tuple[Storage, StudyRecord]:
    return runner.ctx.storage, runner.ctx.study


def _trials(runner: TrialRunner) -> list:
    storage, study = _store(runner)
    return storage.list_trials(study.id)


def _completes(value: float):
    """Training that ends well with ``value``, after recording two epochs."""

    def train(attempt: Attempt) -> TrialOutcome:
        attempt.record_epoch(0, {"loss": 0.9, "val_accuracy": value - 0.1})
        attempt.record_epoch(1, {"loss": 0.5, "val_accuracy": value})
        return TrialOutcome.complete(value, {"val_accuracy": value})

    return train


def _must_not_train(attempt: Attempt) -> TrialOutcome:
    raise AssertionError("a trial the runner refused to claim must not train")


def test_a_claimed_trial_runs_as_running_then_is_recorded_complete_with_its_epochs(tmp_path):
    runner = _runner(tmp_path)
    seen_while_training = []

    def train(attempt: Attempt) -> TrialOutcome:
        seen_while_training.extend(_trials(runner))
        return _completes(0.8)(attempt)

    result = runner.run(Proposal(CONFIG_A, engine_trial_id="e-0"), train)

    [running] = seen_while_training
    assert running.state is TrialState.RUNNING and running.number == 0
    assert running.worker == current_worker() and dict(running.params) == CONFIG_A
    assert result.status is RunStatus.FINISHED and result.value == 0.8
    storage, study = _store(runner)
    [trial] = storage.list_trials(study.id, with_epochs=True)
    assert trial.state is TrialState.COMPLETE and trial.value == 0.8 and trial.engine_trial_id == "e-0"
    assert trial.epochs_run == 2 and trial.curves["loss"] == [0.9, 0.5]
    assert trial.ended_at is not None and not trial.interrupted


def test_a_configuration_already_tried_is_not_trained_again(tmp_path):
    runner = _runner(tmp_path)
    runner.run(Proposal(CONFIG_A), _completes(0.8))

    again = runner.run(Proposal(dict(CONFIG_A)), _must_not_train)

    assert again.status is RunStatus.DUPLICATE and again.duplicate_of == 0
    assert len(_trials(runner)) == 1


def test_no_trial_is_claimed_past_the_budget(tmp_path):
    runner = _runner(tmp_path, budget=2)
    first = runner.run(Proposal(CONFIG_A), _completes(0.7))
    second = runner.run(Proposal(CONFIG_B), _completes(0.8))

    third = runner.run(Proposal(CONFIG_C), _must_not_train)

    assert [first.status, second.status] == [RunStatus.FINISHED, RunStatus.FINISHED]
    assert third.status is RunStatus.BUDGET_REACHED and third.trial is None
    assert [trial.number for trial in _trials(runner)] == [0, 1]
    assert runner.ctx.tracker.remaining() == 0 and runner.ctx.tracker.should_stop()


def test_a_failing_trial_is_recorded_failed_and_the_next_one_still_trains(tmp_path):
    runner = _runner(tmp_path, budget=3)

    def broken(attempt: Attempt) -> TrialOutcome:
        attempt.partial({"split0_test_score": 0.5})
        raise ValueError("bad configuration\nsecond line of detail")

    failed = runner.run(Proposal(CONFIG_A), broken)
    after = runner.run(Proposal(CONFIG_B), _completes(0.9))

    assert failed.status is RunStatus.FINISHED and failed.trial.state is TrialState.FAILED
    assert after.status is RunStatus.FINISHED and after.trial.state is TrialState.COMPLETE
    first, second = _trials(runner)
    # The configuration's own fault: one line of error, the fold it finished kept, counted in the budget.
    assert first.error == "ValueError: bad configuration" and not first.interrupted
    assert first.metrics == {"split0_test_score": 0.5} and first.value is None
    assert second.value == 0.9
    assert runner.ctx.tracker.spent() == 2 and runner.ctx.tracker.consecutive_failures == 0


def test_a_non_finite_objective_fails_the_trial_and_never_ranks(tmp_path):
    runner = _runner(tmp_path)

    result = runner.run(Proposal(CONFIG_A), lambda attempt: TrialOutcome.complete(float("nan"), {}))

    assert result.trial.state is TrialState.FAILED and result.trial.value is None
    assert result.trial.error == "the objective value was nan"


def test_ctrl_c_leaves_the_trial_interrupted_with_its_epochs_and_its_retry_takes_the_budget(tmp_path):
    runner = _runner(tmp_path, budget=2)
    runner.run(Proposal(CONFIG_A), _completes(0.7))

    def interrupted(attempt: Attempt) -> TrialOutcome:
        attempt.record_epoch(0, {"loss": 0.8})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(Proposal(CONFIG_B), interrupted)

    storage, study = _store(runner)
    [_, cut] = storage.list_trials(study.id, with_epochs=True)
    assert cut.state is TrialState.FAILED and cut.interrupted and cut.error == USER_INTERRUPT
    assert cut.epochs_run == 1 and cut.curves["loss"] == [0.8], "the epochs before Ctrl-C are kept"
    # Not counted: the budget still has room for the retry.
    assert runner.ctx.tracker.spent() == 1
    [retry] = trials_to_retry(storage, study)
    assert retry.number == cut.number

    # Its configuration again, without saying it is a retry, is refused; as the retry it trains.
    assert runner.run(Proposal(CONFIG_B), _must_not_train).status is RunStatus.DUPLICATE
    retried = runner.run(Proposal(retry.params, retry_of=retry.number), _completes(0.9))

    assert retried.status is RunStatus.FINISHED and retried.trial.retry_of == cut.number
    assert dict(retried.trial.params) == CONFIG_B
    assert trials_to_retry(storage, study) == [], "a completed retry leaves nothing due"
    assert runner.run(Proposal(CONFIG_C), _must_not_train).status is RunStatus.BUDGET_REACHED


def test_a_late_result_after_the_trial_was_failed_as_stale_is_refused(tmp_path, capsys):
    # A grace period of 0 s: any silence is too long, as for a worker paused past a real grace period.
    runner = _runner(tmp_path, settings={"stale_after_s": 0.0})
    storage, study = _store(runner)
    failed_meanwhile = []

    def paused_worker(attempt: Attempt) -> TrialOutcome:
        time.sleep(0.01)  # some silence since the claim's heartbeat
        failed_meanwhile.extend(fail_abandoned_trials(storage, study))  # another process's recovery
        return TrialOutcome.complete(0.95, {"val_accuracy": 0.95})

    result = runner.run(Proposal(CONFIG_A), paused_worker)

    assert [trial.number for trial in failed_meanwhile] == [0]
    assert result.status is RunStatus.SUPERSEDED and result.trial is None
    [trial] = _trials(runner)
    assert trial.state is TrialState.FAILED and trial.interrupted and trial.value is None
    assert "sent no heartbeat" in trial.error
    assert "note: late result of trial #0 (complete, value 0.95) refused" in capsys.readouterr().err
    # The stale trial's configuration is the one retried, not the late result's.
    assert [retry.number for retry in trials_to_retry(storage, study)] == [0]
