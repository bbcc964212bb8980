"""Where a candidate's folds are fitted: in this process (``--jobs 1``), in spawned processes (``--jobs N``),
or as tasks on a Dask cluster (``--dask``).

Every fitter yields each fold's ``FoldResult`` as it ends, with the fold's epochs recorded on the trial,
so ``hpsearch.engines.sklearn.cross_validation`` can commit the fold before the next one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, NoReturn

from ...errors import FitProcessLostError
from ...training.runner import Attempt
from .settings import DEFAULT_TRAINER

if TYPE_CHECKING:
    import numpy as np

    from ...executors.cluster import StopSignal
    from .candidates import Candidate
    from .estimators import FoldResult

#: The folds of a study: each fold's (training rows, held-out rows), as indices into the rows
#: cross-validation splits (``hpsearch.engines.sklearn.cross_validation.cv_rows``).
Splits = list[tuple["np.ndarray", "np.ndarray"]]
#: How often a trial waiting on its fold processes looks whether the run stops (Ctrl-C, a fatal error).
_POLL_S = 0.2


class FoldFitter:
    """Fits the folds ``todo`` (indices into ``splits``) of one candidate and yields each fold's result as
    it ends."""

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        """The results of the folds ``todo`` of ``candidate``, in the order they end; closing the iterator
        early (a fold failed) fits no more of them."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the fitter holds (processes); it is not used afterwards."""
        return None


class InProcessFitter(FoldFitter):
    """``--jobs 1``: folds one after another in this process, epochs written by the recorder."""

    def __init__(self, x: Any, y: Any, sample_weight: Any, estimator: Any, scorer: Any,
                 trainer: str = DEFAULT_TRAINER):
        from .estimators import fit_cache

        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.estimator = estimator
        self.scorer = scorer
        self.trainer = trainer
        self.compiled_models = fit_cache(trainer)

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from .estimators import fit_and_score, release_fit

        try:
            for fold in todo:
                train, test = splits[fold]
                yield fit_and_score(
                    self.estimator, candidate.sklearn_params, self.x, self.y, train, test, self.scorer,
                    fold=fold, sample_weight=self.sample_weight,
                    on_epoch=lambda epoch, logs, fold=fold: attempt.record_epoch(epoch, logs, fold=fold),
                    compiled_models=self.compiled_models, trainer=self.trainer,
                )
        finally:
            release_fit(self.trainer)


class ProcessFitter(FoldFitter):
    """``--jobs N``: fold fits in N spawned processes, each with ``threads`` TensorFlow threads.

    Spawned, not forked (TensorFlow's runtime does not survive a fork); the processes write their
    epochs themselves, reuse compiled models across the fits of one structure, and die with this one.
    Several candidates' trials may wait on the processes at once (``SklearnEngine._run_in_flight``). A
    fold process that dies (the out-of-memory killer, a signal) breaks the pool: the candidates whose fits
    were queued or running are interrupted (``FitProcessLostError``; which candidate's fit killed it is
    not known), keep their finished folds, and are fitted again with fresh processes in the same run.
    """

    def __init__(self, storage_url: str, processes: int, threads: int, x: Any, y: Any, sample_weight: Any,
                 estimator: Any, scoring: str, trainer: str = DEFAULT_TRAINER,
                 stopping: StopSignal | None = None) -> None:
        from ...executors.cluster import StopSignal

        self.storage_url = storage_url
        self.processes = processes
        self.threads = threads
        self.payload = (x, y, sample_weight, estimator, scoring, trainer)
        self.stopping = stopping or StopSignal()
        self._executor: Any = None
        self._lock = threading.Lock()

    def _pool(self) -> Any:
        import multiprocessing
        import pickle
        from concurrent.futures import ProcessPoolExecutor

        # The process start-up (dying with this process, ignoring Ctrl-C, lean Keras) is the executors'.
        from ...executors.process_setup import start_fold_process

        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_fold_process,
                    # As bytes: unpickling the estimator imports Keras, which the process first slims.
                    initargs=(self.threads, self.storage_url, pickle.dumps(self.payload)),
                )
            return self._executor

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from .estimators import fit_fold_in_process

        pool = self._pool()
        try:
            futures = [pool.submit(fit_fold_in_process, attempt.record.id, candidate.sklearn_params, fold,
                                   *splits[fold])
                       for fold in todo]
        except BrokenProcessPool as error:  # broken by another candidate's fit, not yet replaced
            self._lost(pool, error)
        pending = set(futures)
        try:
            while pending:
                # Ctrl-C, or another trial's fatal error: this trial stops as interrupted.
                self.stopping.raise_if_set(list(pending))
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool as error:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        self._lost(pool, error)
                    except BaseException:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        raise
                    yield result
        except GeneratorExit:  # a fold failed: fit no more of this candidate, let running folds end
            for future in futures:
                future.cancel()
            wait(futures)
            raise
        except FitProcessLostError:  # the broken pool is gone already; a fresh one may be serving others
            raise
        except BaseException:  # Ctrl-C: stop the processes now
            self._stop()
            raise

    def _lost(self, pool: Any, error: BaseException) -> NoReturn:
        """The pool broke (a fold process died): shut it down once, whichever candidate sees it first, so
        the next fits get fresh processes; this candidate is interrupted."""
        with self._lock:
            if self._executor is not pool:
                pool = None  # another candidate's thread replaced it already: leave the new one be
            else:
                self._executor = None
        if pool is not None:
            _shut_down(pool)
        raise FitProcessLostError(
            "a fold process died (killed by a signal or the out-of-memory killer) while this candidate "
            "had fits in its pool"
        ) from error

    def _stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            _shut_down(executor)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _shut_down(executor: Any) -> None:
    """Stop a process pool now: its queued fits are cancelled and its processes killed."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=10)


class DaskFitter(FoldFitter):
    """``--dask``: a candidate's folds as tasks on a Dask cluster, all submitted at once.

    A task is a pure function of the candidate's parameters and the fold's row indices; the data went to
    the cluster once (``hpsearch.executors.cluster.share``). A fold's epochs come back with its result and are
    recorded here, so Dask workers never need the database. A worker that dies mid-fit costs only that
    fit: the scheduler runs it again on another worker.
    """

    def __init__(self, client: Any, address: str, data: Any, stopping: Any) -> None:
        self.client = client
        self.address = address
        self.data = data
        self.stopping = stopping

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from ...executors.cluster import completed, fit_fold_task, task_key

        name = f"trial{attempt.record.number}"
        futures = [
            self.client.submit(fit_fold_task, self.data, candidate.sklearn_params, fold, *splits[fold],
                               key=task_key("fold", f"{name}-fold{fold}"), pure=False)
            for fold in todo
        ]
        try:
            for fold_result, epochs in completed(futures, self.address, self.stopping):
                for epoch, logs in epochs:
                    attempt.record_epoch(epoch, logs, fold=fold_result.fold)
                yield fold_result
        finally:  # a fold failed (error_score), Ctrl-C, or the cluster went away: fit no more of them
            for future in futures:
                if not future.done():
                    future.cancel()
