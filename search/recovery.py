"""Liveness: finding trials whose worker is gone and failing them, so that their configurations are retried.

One rule for every engine and backend. A RUNNING trial is abandoned when

- its worker ran on this host and that process no longer exists (a ``kill -9``, an out-of-memory kill), or
- its heartbeat is older than the study's grace period (``--stale-after``, default 60 s): the worker's
  heartbeat thread refreshes every trial it trains every few seconds, however long an epoch takes, so a
  silent trial means a paused (SIGSTOP), hung or unreachable worker, or a machine that died.

An abandoned trial is failed as interrupted, in one conditional update (only a RUNNING trial can be
failed, so two processes recovering at once fail it once), and its configuration is retried as
:mod:`hpsearch.retry_policy` says (up to ``MAX_ATTEMPTS`` attempts in all, then given up). If the worker
was only slow and reports later, its writes are refused: the trial stays failed, the retry stands.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from hpsearch.storage import Storage, StudyRecord, TrialNotRunningError, TrialRecord, TrialState

from .settings import StudySettings
from .training.runner import stale_after_s


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
        if started > trial.started_at + timedelta(seconds=1):
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def abandoned_because(trial: TrialRecord, now: datetime, grace_s: float) -> str | None:
    """Why a RUNNING trial is taken as abandoned, or None while its worker is live."""
    if worker_is_alive(trial) is False:
        return f"worker {trial.worker} stopped"
    silent = (now - trial.heartbeat_at).total_seconds()
    if silent > grace_s:
        return f"worker {trial.worker} sent no heartbeat for {silent:.0f} s (grace period {grace_s:g} s)"
    return None


def interrupt_trial(
    storage: Storage, trial: TrialRecord, why: str, *, ended_at: datetime | None = None
) -> TrialRecord | None:
    """Fail a RUNNING trial as interrupted; None when it already ended (someone else got there first).

    ``ended_at`` is when the trial stopped, if earlier than now (an abandoned trial: its last heartbeat).
    """
    try:
        return storage.finish_trial(
            trial.id,
            TrialState.FAILED,
            error=f"interrupted: {why} during epoch {trial.epochs_run + 1}",
            interrupted=True,
            metrics=trial.metrics,
            ended_at=ended_at,
        )
    except TrialNotRunningError:
        return None


def fail_abandoned_trials(storage: Storage, study: StudyRecord) -> list[TrialRecord]:
    """Fail the study's RUNNING trials whose worker is gone or silent; live workers' trials are left alone."""
    now = datetime.now(UTC)
    grace_s = stale_after_s(StudySettings.from_record(study.settings))
    failed = []
    for trial in storage.running_trials(study.id):
        why = abandoned_because(trial, now, grace_s)
        if why is None:
            continue
        # Its worker stopped at its last heartbeat: the trial's duration ends there, not when this
        # recovery ran (a study resumed the next day would show a trial of a day).
        if (record := interrupt_trial(storage, trial, why, ended_at=trial.heartbeat_at)) is not None:
            failed.append(record)
    return failed

