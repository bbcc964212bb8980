"""Training a study's trials once it is set up: here (``--in-process``) or in supervised worker
processes, and the body of each such worker.

Every run is the driver's loop over the engine's search session (:func:`hpsearch.driver.drive`); every
trial goes through the recorder, and whatever stops a run (budget, Ctrl-C, a crash), no trial this process
started is left RUNNING: it is failed as interrupted and retried on resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from hpsearch.storage import Storage, StorageError, StudyRecord, open_storage

from .driver import drive
from .engines.registry import get_engine
from .errors import StorageTroubleError
from .recovery import interrupt_trial
from .retry_policy import trials_to_retry
from .settings import StudySettings
from .study_inputs import load_study_dataset, study_space
from .study_report import print_summary, resume_command
from .study_settings import stored_budget
from .training.context import Budget, BudgetTracker, RunContext
from .training.recorder import TrialRecorder, current_worker

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace
    from hpsearch.storage import TrialRecord

    from .data import Dataset
    from .engines.base import Engine
    from .executors.supervisor import EarlyWorkers
    from .study_options import Isolation


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a search, carrying the command that resumes it."""

    def __init__(self, resume_command: str) -> None:
        super().__init__(resume_command)
        self.resume_command = resume_command


def run_context(
    storage: Storage,
    study: StudyRecord,
    space: SearchSpace,
    dataset: Dataset,
    budget: Budget,
    retries: list[TrialRecord],
) -> RunContext:
    """What an engine runs ``study`` with: a recorder for its trials, wired to a tracker of ``budget``."""
    recorder = TrialRecorder(storage, study)
    tracker = BudgetTracker(storage, study, budget)
    recorder.on_finish(tracker.trial_finished)
    return RunContext(
        storage=storage, study=study, space=space, dataset=dataset, recorder=recorder, tracker=tracker,
        settings=StudySettings.from_record(study.settings), retries=retries,
    )


@dataclass(frozen=True)
class StudyRun:
    """One run (or resume) of a study, as set up: what every way of executing it trains with."""

    storage: Storage
    study: StudyRecord
    space: SearchSpace
    dataset: Dataset
    engine: Engine
    budget: Budget
    #: Interrupted trials whose configuration is tried again first (``retry_policy.trials_to_retry``).
    retries: list[TrialRecord] = field(default_factory=list)

    def context(self, retries: list[TrialRecord] | None = None) -> RunContext:
        """A fresh context of this run (``retries`` instead of the run's own, when given)."""
        return run_context(self.storage, self.study, self.space, self.dataset, self.budget,
                           self.retries if retries is None else retries)

    def summary(self, started: float, out: TextIO) -> StudyRecord:
        """Print the run's summary to ``out`` and return the study as stored now."""
        print_summary(self.storage, self.study, self.space, time.monotonic() - started, out, self.budget,
                      self.engine)
        return self.storage.get_study(self.study.name)

    @property
    def resume_command(self) -> str:
        """The command that continues the study (no password in it)."""
        return resume_command(self.study, self.storage.url)


def launch(
    run: StudyRun, progress: bool, isolation: Isolation, out: TextIO, early: EarlyWorkers
) -> StudyRecord:
    """Train in supervised worker processes (the first are ``early``'s), or here with ``--in-process``.

    Args:
        run: the study's run, as set up.
        progress: whether to show a progress bar.
        isolation: how many workers, recycling and memory limits, or ``--in-process``.
        out: where the summary is printed.
        early: the workers started while the study was set up.

    Returns:
        The study as stored once the run ended, after printing its summary to ``out``.

    Raises:
        SearchInterrupted: on Ctrl-C, with the command that resumes the study.
        SearchFailedError: the search could not make progress (every trial failed, or too many in a row).
        StorageTroubleError: the database failed during an in-process run.
    """
    probe = run.context(retries=[])
    run.engine.prepare(probe)
    if isolation.in_process:
        return _execute(run, progress, out)
    # Imported here: a worker process imports this module, and never needs the supervisor.
    from .executors.supervisor import Supervisor

    supervisor = Supervisor(
        run.storage, run.study, run.budget, recover=lambda failed: run.engine.recover(probe, failed),
        parallel_workers=run.engine.parallel_workers, workers=isolation.workers,
        recycle_after=isolation.recycle_after, memory_limit_mb=isolation.memory_limit_mb, progress=progress,
        retries_pending=bool(run.retries), standbys=early.take(), resume_command=run.resume_command,
    )
    started = time.monotonic()
    try:
        supervisor.run()
    except KeyboardInterrupt:
        raise SearchInterrupted(run.resume_command) from None
    finally:
        _touch(run.storage, run.study)
    return run.summary(started, out)


def work_on_study(
    name: str,
    storage_url: str,
    *,
    session_trials: int | None,
    memory_limit_mb: float | None,
    timeout_s: float | None,
    retries: bool,
) -> None:
    """The body of a worker process: train the study's trials until told to stop (no output).

    ``session_trials`` and ``memory_limit_mb`` end this process early (it is recycled), ``timeout_s`` is
    the time left to the run, and ``retries`` says whether to try interrupted trials' configurations first.

    Raises:
        SearchFailedError: this worker's trials could not make progress.
    """
    storage = open_storage(storage_url, create=False)
    study = storage.get_study(name)
    budget = stored_budget(study.settings, timeout_s)
    budget.session_trials = session_trials
    budget.memory_limit_mb = memory_limit_mb
    engine = get_engine(study.engine)
    ctx = run_context(storage, study, study_space(study), load_study_dataset(study, storage), budget,
                      trials_to_retry(storage, study) if retries else [])
    try:
        drive(ctx, engine.session(ctx))
    finally:
        _fail_own_running_trials(storage, study)
    ctx.tracker.raise_if_search_failed()


def _execute(run: StudyRun, progress: bool, out: TextIO) -> StudyRecord:
    """Run the engine in this process (``--in-process``), with a progress bar of its own."""
    from .progress import ProgressBar

    ctx = run.context()
    bar = ProgressBar(
        total=run.budget.trials, initial=ctx.tracker.spent(), objective=run.study.objective,
        direction=run.study.direction, best=_best_value(run.storage, run.study), enabled=progress,
    )
    ctx.recorder.on_finish(bar.trial_finished)
    started = time.monotonic()
    try:
        drive(ctx, run.engine.session(ctx))
    except KeyboardInterrupt:
        raise SearchInterrupted(run.resume_command) from None
    except StorageTroubleError as trouble:
        raise StorageTroubleError(f"{trouble}; continue with: {run.resume_command}") from None
    finally:
        bar.close()
        _fail_own_running_trials(run.storage, run.study)
        _touch(run.storage, run.study)
    ctx.tracker.raise_if_search_failed()
    return run.summary(started, out)


def _touch(storage: Storage, study: StudyRecord) -> None:
    """Mark the study as updated; best effort, so a failing database does not hide why the run ended."""
    try:
        storage.touch_study(study.id)
    except StorageError:
        pass


def _fail_own_running_trials(storage: Storage, study: StudyRecord) -> None:
    """Safety net: a trial this process started must not stay RUNNING once the run is over."""
    me = current_worker()
    try:
        for trial in storage.running_trials(study.id):
            if trial.worker == me:
                interrupt_trial(storage, trial, "the run stopped")
    except StorageError:
        pass  # the database is failing: resume fails the trial once this process is gone


def _best_value(storage: Storage, study: StudyRecord) -> float | None:
    best = storage.best_trials(study.id, 1)
    return best[0].value if best else None
