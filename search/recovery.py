"""Finding trials whose worker died, failing them, and choosing which configurations to retry.

A ``kill -9`` or a power cut leaves trials RUNNING in the database. On resume they are failed as
interrupted and their configuration is retried once; a configuration that was already a retry is not
retried again, so one that kills its worker every time cannot stall the study.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from storage import Storage, StudyRecord, TrialRecord, TrialState

#: A trial from another machine whose heartbeat is older than this is taken as abandoned.
STALE_AFTER = timedelta(minutes=5)


def worker_is_alive(trial: TrialRecord) -> bool | None:
    """True/False for a worker on this host; None when the worker ran elsewhere (cannot be checked)."""
    import psutil

    host, _, pid_text = trial.worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        process = psutil.Process(int(pid_text))
        # A reused pid belongs to a process started after the trial did.
        started = datetime.fromtimestamp(process.create_time(), tz=UTC)
        return started <= trial.started_at + timedelta(seconds=1)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _abandoned(trial: TrialRecord, now: datetime) -> bool:
    alive = worker_is_alive(trial)
    if alive is not None:
        return not alive
    last_sign = trial.heartbeat_at or trial.started_at
    return now - last_sign > STALE_AFTER


def _interrupt(storage: Storage, trial: TrialRecord) -> TrialRecord:
    return storage.finish_trial(
        trial.id,
        TrialState.FAILED,
        error=f"interrupted: worker {trial.worker} stopped during epoch {trial.epochs_run + 1}",
        interrupted=True,
        metrics=trial.metrics,
    )


def fail_abandoned_trials(storage: Storage, study: StudyRecord) -> list[TrialRecord]:
    """Fail the study's RUNNING trials whose worker is gone; live workers' trials are left alone."""
    now = datetime.now(UTC)
    return [
        _interrupt(storage, trial) for trial in storage.running_trials(study.id) if _abandoned(trial, now)
    ]


def fail_trial_of_dead_worker(storage: Storage, study: StudyRecord, number: int) -> TrialRecord | None:
    """Fail one trial that an engine found stale (its heartbeat stopped), if it is still RUNNING."""
    trial = storage.get_trial(study.id, number)
    if trial.state is not TrialState.RUNNING:
        return None
    return _interrupt(storage, trial)


def trials_to_retry(storage: Storage, study: StudyRecord) -> list[TrialRecord]:
    """Interrupted trials whose configuration has not been retried yet and that were not retries."""
    trials = storage.list_trials(study.id)
    retried = {trial.retry_of for trial in trials if trial.retry_of is not None}
    return [
        trial
        for trial in trials
        if trial.interrupted and trial.retry_of is None and trial.number not in retried
    ]
