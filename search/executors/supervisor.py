"""The supervisor: keeps K worker processes training one study, and survives whatever happens to them.

It holds no TensorFlow state. A worker that exits on its own (budget reached, recycled) is replaced while
budget is left; one that dies (out-of-memory kill, segfault, ``kill -9``) costs only its in-flight
trial, which is failed with the cause and whose configuration the next worker retries (up to
``retry_policy.MAX_ATTEMPTS`` attempts in all). Every second
it also applies the liveness rule of :mod:`hpsearch.recovery` to the whole study, so a trial whose worker
went silent (paused, hung, or on a machine that died) is failed and retried even while that worker
still exists. Progress is read from the database, so the bar counts every worker's trials.

A worker of ours stopped (SIGSTOP, a debugger) in the middle of a write to an SQLite database holds the
file's one write lock: every other writer waits, then fails at its busy timeout, and nobody can fail the
stopped worker's trial. So when one of our workers is stopped while the file stays write-locked for a
third of the busy timeout (at most 10 s), the supervisor kills it: the lock is released, and its trial is
failed and retried as for any dead worker. A stopped worker that holds no lock is left to the liveness
rule above. PostgreSQL has no file-wide lock.

Warm workers: once a live worker is within ``WARM_WORKER_LEAD_TRIALS`` trials of being recycled
(``--recycle-after``), a replacement is started as a standby (``hpsearch.worker --standby``): it
imports
TensorFlow and Keras while the old worker still trains, and is told to start the moment a worker slot
frees, so recycling costs no wait. It claims nothing before that, so an engine that allows one worker at a
time still never has two training; a standby no longer needed is killed (it holds no trial).

Early workers: a run's first workers are started the same way, as standbys, before the run loads its data
and creates (or reopens) the study (:class:`EarlyWorkers`), so their imports (5-8 s of TensorFlow here)
overlap that set-up (2-3 s) instead of following it. They are told to start once the study is ready; a
run that stops before (bad data, an existing study, Ctrl-C) kills them.

The storage URL reaches workers through their environment, never their command line, where ``ps`` would
show a password to every user of the machine.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
from hpsearch.storage import Storage, StorageError, StudyRecord, TrialRecord, TrialState
from hpsearch.storage.connection import sqlite_busy_timeout_s
from sqlalchemy.exc import SQLAlchemyError

from ..errors import HpsearchError, SearchFailedError, StorageTroubleError
from ..recovery import fail_abandoned_trials, interrupt_trial
from ..retry_policy import MAX_ATTEMPTS
from ..runtime.backends import worker_environment
from ..settings import StudySettings
from ..training.context import Budget, BudgetTracker

#: Seconds a worker gets to record its interrupted trial after SIGINT before it is killed.
STOP_GRACE_S = 30.0
#: Workers dying this many times in a row without finishing a trial end the search.
MAX_DEATHS_WITHOUT_PROGRESS = 3
POLL_S = 0.5
#: Seconds between two liveness checks of the study's running trials.
LIVENESS_EVERY_S = 1.0
#: A warm replacement is started when a live worker has this many trials or fewer left before recycling
#: (a worker's imports take about as long as three short trials here).
WARM_WORKER_LEAD_TRIALS = 3


class WorkerError(HpsearchError):
    """A worker stopped with an error meant for the user; carries the worker's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Worker:
    process: subprocess.Popen
    stderr: IO[str]
    finished_at_start: int
    #: Why the supervisor killed it, when it did (the cause its trial is failed with).
    killed_because: str | None = None

    @property
    def id(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def lines(self, prefix: str) -> list[str]:
        self.stderr.seek(0)
        return [line.strip().removeprefix(prefix) for line in self.stderr.read().splitlines()
                if line.startswith(prefix)]

    def error_line(self) -> str | None:
        lines = self.lines("error: ")
        return lines[-1] if lines else None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_death(returncode: int) -> str:
    if returncode < 0:
        name = _signal_name(returncode)
        hint = " (the out-of-memory killer or kill -9)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


@dataclass(frozen=True)
class WorkerLaunch:
    """How every worker of one run is started: its study, database, backend and share of the cores."""

    study: str
    storage_url: str
    settings: StudySettings
    workers: int
    recycle_after: int | None
    memory_limit_mb: float | None

    def spawn(self, *, standby: bool = False, timeout: float | None = None, retries: bool = False,
              finished: int = 0) -> Worker:
        """Start a worker; a standby gets its time left and retries with its start line instead."""
        threads = max(1, _cpu_count() // self.workers)
        command = [sys.executable, "-m", "hpsearch.worker", self.study, "--threads", str(threads)]
        if self.recycle_after:
            command += ["--recycle-after", str(self.recycle_after)]
        if self.memory_limit_mb:
            command += ["--max-memory-mb", str(self.memory_limit_mb)]
        if standby:
            command.append("--standby")
        else:
            if timeout is not None:
                command += ["--timeout", f"{timeout:.3f}"]
            if retries:
                command.append("--retries")
        # stderr goes to a file, not a pipe: TensorFlow can write more than a pipe buffers.
        stderr = tempfile.TemporaryFile(mode="w+", prefix="hpsearch-worker-")
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE if standby else subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **worker_environment(self.settings), "PYTHONPATH": _pythonpath(),
                 "HPSEARCH_STORAGE": self.storage_url},
            # Own session: a Ctrl-C in the terminal reaches the supervisor, which stops workers in order.
            start_new_session=True,
        )
        return Worker(process, stderr, finished)


class EarlyWorkers:
    """A run's first workers, started as standbys before the study is ready (module docstring).

    Use it as a context manager around the run's set-up: the supervisor takes the workers with
    :meth:`take`; those not taken (the set-up failed or was interrupted) are killed on the way out.
    """

    def __init__(self, launch: WorkerLaunch | None) -> None:
        """``launch`` None (a run training in its own process) starts nothing."""
        self._workers = [launch.spawn(standby=True) for _ in range(launch.workers)] if launch else []

    def take(self) -> list[Worker]:
        taken, self._workers = self._workers, []
        return taken

    def __enter__(self) -> EarlyWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.take():
            _dismiss(worker)


def _dismiss(worker: Worker) -> None:
    """End a standby: it claimed nothing, so killing it loses nothing."""
    if worker.process.poll() is None:
        worker.process.kill()
    worker.process.wait()
    worker.stderr.close()


class Supervisor:
    def __init__(
        self,
        storage: Storage,
        study: StudyRecord,
        budget: Budget,
        *,
        recover: Callable[[list[TrialRecord]], None],
        parallel_workers: bool,
        workers: int,
        recycle_after: int | None,
        memory_limit_mb: float | None,
        progress: bool,
        retries_pending: bool,
        resume_command: str = "",
        standbys: list[Worker] | None = None,
    ) -> None:
        self.storage = storage
        self.study = study
        #: Brings the engine's own state in line after trials were failed here (``Engine.recover``).
        self.recover = recover
        #: Whether the engine lets several workers search the study at once (``Engine.parallel_workers``).
        self.parallel_workers = parallel_workers
        self.budget = budget
        self.workers = workers
        self.recycle_after = recycle_after
        self.launch = WorkerLaunch(study.name, storage.url, StudySettings.from_record(study.settings),
                                   workers, recycle_after, memory_limit_mb)
        self.progress = progress
        self.retries_pending = retries_pending
        self.tracker = BudgetTracker(storage, study, budget)
        self.live: list[Worker] = []
        #: Warm workers, imported and waiting: the run's first ones (EarlyWorkers), then a replacement
        #: for the next worker that retires.
        self.standbys: list[Worker] = list(standbys or [])
        self.deaths_without_progress = 0
        self.exhausted = False
        self._bar = None
        self._liveness_at = 0.0
        self._sqlite_file = storage.location.sqlite_file
        #: Since when one of our workers has been seen stopped while the SQLite file was write-locked.
        self._stopped_and_locked_since: float | None = None
        #: The command that continues the study, for messages (no password in it).
        self.resume_command = resume_command

    # -- workers ----------------------------------------------------------------------------------
    def _spawn(self, *, standby: bool = False) -> Worker:
        if standby:
            return self.launch.spawn(standby=True)
        retries, self.retries_pending = self.retries_pending, False
        return self.launch.spawn(timeout=self.budget.time_left(), retries=retries,
                                 finished=self._finished())

    def _next_worker(self) -> Worker:
        """A live standby, told to start now, or a new worker when there is none."""
        while self.standbys:
            worker = self.standbys.pop(0)
            if worker.process.poll() is not None:
                _dismiss(worker)
                continue
            start = {"timeout": self.budget.time_left(), "retries": self.retries_pending}
            try:
                assert worker.process.stdin is not None
                worker.process.stdin.write((json.dumps(start) + "\n").encode())
                worker.process.stdin.close()
            except OSError:
                _dismiss(worker)  # it died while waiting: try the next, or start a fresh one
                continue
            self.retries_pending = False
            worker.finished_at_start = self._finished()
            return worker
        return self._spawn()

    def _keep_standby(self, done: bool) -> None:
        """Start a warm worker when a live one is about to be recycled; dismiss standbys none will need."""
        if done:
            self._dismiss_standbys()
            return
        for worker in [worker for worker in self.standbys if worker.process.poll() is not None]:
            self.standbys.remove(worker)
            _dismiss(worker)
        if self.standbys or not self.recycle_after or len(self.live) < self.workers:
            return
        try:
            remaining = self.tracker.remaining()
            if remaining is not None and remaining <= 0:
                return
            finished = self.storage.finished_by_worker(self.study.id, [worker.id for worker in self.live])
            nearest = max(finished, key=lambda worker: finished[worker])
            if finished[nearest] < self.recycle_after - WARM_WORKER_LEAD_TRIALS:
                return
            running = sum(trial.worker == nearest for trial in self.storage.running_trials(self.study.id))
            # Read again, after the worker's counts: a trial claimed or ended between these reads then
            # lowers what is left rather than what the worker still has to do, so it never starts a
            # standby that no trial is left for (read before, a claim in between did).
            remaining = self.tracker.remaining()
        except (StorageError, SQLAlchemyError):
            return  # the database is busy: look again next time
        # Trials the live workers still start before the nearest one retires, each at about its pace: when
        # they cover every trial left, no replacement will train, and a standby would only take CPU from
        # the last trials while it imports.
        still_to_start = max(0, self.recycle_after - finished[nearest] - running) * len(self.live)
        if remaining is not None and remaining <= still_to_start:
            return
        self.standbys.append(self._spawn(standby=True))

    def _dismiss_standbys(self) -> None:
        for worker in self.standbys:
            _dismiss(worker)
        self.standbys.clear()

    def _finished(self) -> int:
        counts = self.storage.count_trials(self.study.id)
        return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] + counts[TrialState.FAILED]

    def _fail_trials_of(self, worker: Worker, cause: str) -> list[TrialRecord]:
        failed = []
        try:
            for trial in self.storage.running_trials(self.study.id):
                if trial.worker == worker.id:
                    record = interrupt_trial(self.storage, trial, f"worker {worker.id} {cause}")
                    if record is not None:
                        failed.append(record)
            if failed:
                self.recover(failed)
        except (StorageError, SQLAlchemyError):
            pass  # the database is what failed: the trials stay RUNNING and resume fails them
        return failed

    def _check_liveness(self) -> None:
        """Fail the study's trials whose worker is gone or silent (see hpsearch.recovery), whoever ran
        them."""
        now = time.monotonic()
        if now - self._liveness_at < LIVENESS_EVERY_S:
            return
        self._liveness_at = now
        self._end_stopped_lock_holders(now)
        if self._stopped_and_locked_since is not None:
            return  # failing a trial is a write: it would only wait for the stopped worker's lock
        try:
            failed = fail_abandoned_trials(self.storage, self.study)
            if failed:
                self.recover(failed)
        except (StorageError, SQLAlchemyError):  # ours, or Optuna's storage in recover()
            return  # the database is busy or failing: check again next time (workers report their own)
        if not failed:
            return
        self.retries_pending = True
        self.exhausted = False  # the failed trials' retries need a worker
        for trial in failed:
            self._note(f"trial #{trial.number} marked FAILED ({trial.error}); its configuration will be "
                       f"retried (up to {MAX_ATTEMPTS} attempts in all)")
            if self.parallel_workers:
                continue
            # An engine driving one oracle must never have two workers: a silent worker of ours is
            # stopped for good before its replacement starts.
            for worker in self.live:
                if worker.id == trial.worker and worker.process.poll() is None:
                    worker.process.kill()

    def _end_stopped_lock_holders(self, now: float) -> None:
        """Kill our workers that are stopped while the SQLite file stays write-locked (module docstring)."""
        if self._sqlite_file is None:
            return
        stopped = [worker for worker in self.live if _is_stopped(worker.process.pid)]
        if not stopped or not _write_locked(self._sqlite_file):
            self._stopped_and_locked_since = None
            return
        if self._stopped_and_locked_since is None:
            self._stopped_and_locked_since = now
        waited = now - self._stopped_and_locked_since
        if waited < stopped_lock_holder_limit_s():
            return
        self._stopped_and_locked_since = None
        for worker in stopped:
            worker.killed_because = (
                "was stopped (SIGSTOP or a debugger) while the SQLite database stayed locked for "
                f"{waited:.0f} s, which blocks every writer of the study, and was killed"
            )
            worker.process.kill()
            # Reaped now, with its cause: left to the next poll, the liveness rule could find its
            # process gone first and fail its trial as merely "stopped".
            worker.process.wait()
            self._reap(worker)

    def _reap(self, worker: Worker) -> None:
        returncode = worker.process.returncode
        self.live.remove(worker)
        progressed = self._finished() > worker.finished_at_start
        for note in worker.lines("note: "):
            self._note(note)
        if returncode == 0:
            worker.stderr.close()
            if not progressed:
                # It stopped on its own without finishing a trial: the engine has nothing left to propose
                # (an exhausted space, a Hyperband iteration that lost trials to failures, the last trials
                # of the budget held by other workers). A replacement would stop the same way, so none is
                # started; the workers still training finish their trials.
                self.exhausted = True
            return
        if returncode == StorageTroubleError.worker_exit_code:
            message = worker.error_line() or "the database failed during a trial"
            worker.stderr.close()
            self.stop_workers()
            resume = f"; continue with: {self.resume_command}" if self.resume_command else ""
            raise StorageTroubleError(f"{message}{resume}")
        if returncode in (1, 2):
            message = worker.error_line() or f"a worker failed (exit code {returncode})"
            worker.stderr.close()
            self.stop_workers()
            raise WorkerError(message, returncode)
        cause = worker.killed_because or describe_death(returncode)
        worker.stderr.close()
        failed = self._fail_trials_of(worker, cause)
        self.retries_pending = True
        self.exhausted = False  # the dead worker's trial needs a retry: there is work again
        self.deaths_without_progress = 0 if progressed else self.deaths_without_progress + 1
        if failed:
            numbers = ", ".join(f"#{trial.number}" for trial in failed)
            self._note(f"worker {worker.id} {cause}; trial {numbers} marked FAILED and will be retried "
                       f"(up to {MAX_ATTEMPTS} attempts in all)")
        if self.deaths_without_progress >= MAX_DEATHS_WITHOUT_PROGRESS:
            self.stop_workers()
            raise SearchFailedError(
                f"{self.deaths_without_progress} workers in a row died before finishing a trial "
                f"(last: {cause}); see `hpsearch trials {shlex.quote(self.study.name)} --state failed`"
            )

    def stop_workers(self) -> None:
        """Ask every worker to stop (SIGINT: it records its trial as interrupted), then make sure."""
        self._dismiss_standbys()
        for worker in self.live:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in list(self.live):
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            self._fail_trials_of(worker, describe_death(worker.process.returncode or -signal.SIGKILL))
            worker.stderr.close()
        self.live.clear()

    # -- the loop ---------------------------------------------------------------------------------
    def _note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, file=sys.stderr)

    def _refresh(self) -> None:
        if self._bar is not None:
            best = self.storage.best_trials(self.study.id, 1)
            self._bar.show(self.tracker.spent(), best[0].value if best else None)

    def run(self) -> None:
        from ..progress import ProgressBar

        best = self.storage.best_trials(self.study.id, 1)
        bar = ProgressBar(
            total=self.budget.trials, initial=self.tracker.spent(), objective=self.study.objective,
            direction=self.study.direction, best=best[0].value if best else None, enabled=self.progress,
        )
        self._bar = bar
        try:
            while True:
                done = self.exhausted or self.tracker.should_stop()
                while not done and len(self.live) < self.workers:
                    self.live.append(self._next_worker())
                self._keep_standby(done)
                if not self.live:
                    return
                _wait_for_an_exit(self.live, POLL_S)
                self._refresh()
                for worker in list(self.live):
                    if worker.process.poll() is not None:
                        self._reap(worker)
                self._check_liveness()
        except KeyboardInterrupt:
            self.stop_workers()
            raise
        finally:
            self._dismiss_standbys()
            self._refresh()
            bar.close()
            self._bar = None


def _wait_for_an_exit(workers: list[Worker], timeout_s: float) -> None:
    """Sleep up to ``timeout_s``, waking as soon as one of ``workers`` exits (Linux pidfds; a plain sleep
    elsewhere): the last trial's results are shown, and a retired worker replaced, without a poll's wait."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        time.sleep(timeout_s)
        return
    descriptors: list[int] = []
    try:
        for worker in workers:
            descriptors.append(pidfd_open(worker.process.pid))
        select.select(descriptors, [], [], timeout_s)
    except ProcessLookupError:
        return  # one has exited and is being reaped already
    except OSError:
        time.sleep(timeout_s)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def stopped_lock_holder_limit_s() -> float:
    """Seconds a stopped worker may keep the SQLite file locked: well within the others' busy timeout."""
    return min(10.0, sqlite_busy_timeout_s() / 3)


def _is_stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def _write_locked(path: Path) -> bool:
    """Whether another connection holds the SQLite file's write lock right now (no waiting)."""
    import sqlite3

    try:  # read-write, never create: a file deleted under the study is not made again here
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0,
                                     isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        return "locked" in str(error) or "busy" in str(error)
    finally:
        connection.close()


def _pythonpath() -> str:
    """Workers import this very checkout, also when it is not installed (tests, scripts)."""
    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else f"{root}{os.pathsep}{existing}"
