"""Where a candidate's folds are fitted: in this process (``--jobs 1``), in spawned processes (``--jobs N``),
as tasks on a Dask cluster (``--dask``), or with other candidates' folds as populations in this process
(``--trainer population``).

One contract for all three: a fold is a picklable task (the candidate's parameters, the fold's row
indices; the data and the base estimator travel once per process or cluster) that runs
:func:`hpsearch.training.fold_fitting.fit_and_score`, and every epoch it trains ends in the trial's
``Attempt`` (``Attempt.record_epoch``), in this process: directly for ``--jobs 1``, streamed as it ends
from a fold process (:mod:`hpsearch.executors.epoch_stream`), sent back with the fold's result from a
Dask worker (:mod:`hpsearch.executors.fold_tasks` is their side); neither opens the database. Every
fitter yields each fold's ``FoldResult`` as it ends, its epochs already handed to the attempt, so
``hpsearch.engines.sklearn.cross_validation`` can commit the fold before the next one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import FitProcessLostError

if TYPE_CHECKING:
    import numpy as np

    from ..training.fold_fitting import FoldResult
    from ..training.runner import Attempt
    from .cluster import StopSignal
    from .fold_tasks import Epochs

#: The folds of a study: each fold's (training rows, held-out rows), as indices into the rows
#: cross-validation splits (``hpsearch.engines.sklearn.cross_validation.cv_rows``).
Splits = list[tuple["np.ndarray", "np.ndarray"]]

#: How often a trial waiting on its fold processes looks whether the run stops (Ctrl-C, a fatal error).
_POLL_S = 0.2


class FoldFitter:
    """Fits the folds ``todo`` (indices into ``splits``) of one candidate and yields each fold's result as
    it ends."""

    def folds(
        self, attempt: Attempt, params: Mapping[str, Any], splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        """The results of the folds ``todo`` of the candidate whose estimator parameters are ``params``, in
        the order they end, each fold's epochs handed to ``attempt`` before its result; closing the
        iterator early (a fold failed) fits no more of them."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the fitter holds (processes); it is not used afterwards."""
        return None


class InProcessFitter(FoldFitter):
    """``--jobs 1``: folds one after another in this process, each epoch handed to the attempt as it ends.

    ``trainer`` is the sklearn engine's ``--trainer`` (``scikeras`` or ``hpsearch``).
    """

    def __init__(self, x: Any, y: Any, sample_weight: Any, estimator: Any, scorer: Any, trainer: str):
        from ..training.fold_fitting import fit_cache

        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.estimator = estimator
        self.scorer = scorer
        self.trainer = trainer
        self.compiled_models = fit_cache(trainer)

    def folds(
        self, attempt: Attempt, params: Mapping[str, Any], splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from ..training.fold_fitting import fit_and_score, release_fit

        try:
            for fold in todo:
                train, test = splits[fold]
                yield fit_and_score(
                    self.estimator, params, self.x, self.y, train, test, self.scorer,
                    fold=fold, sample_weight=self.sample_weight,
                    on_epoch=lambda epoch, logs, fold=fold: attempt.record_epoch(epoch, logs, fold=fold),
                    compiled_models=self.compiled_models, trainer=self.trainer,
                )
        finally:
            release_fit(self.trainer)


class PopulationFitter(FoldFitter):
    """``--trainer population``: candidates x folds as populations in this process, on every core
    (:mod:`hpsearch.training.fold_population`); each fold's epochs handed to its trial's attempt as they end.

    ``folds`` fits one candidate's folds as a population of its own (a retry, a candidate that trains
    alone); ``fit_many`` fits several candidates' folds together, as the engine hands them over.
    """

    def __init__(self, x: Any, y: Any, sample_weight: Any, estimator: Any, scorer: Any):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.estimator = estimator
        self.scorer = scorer

    def folds(
        self, attempt: Attempt, params: Mapping[str, Any], splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        yield from self.fit_many([(attempt, params, todo)], splits)[0]

    def fit_many(
        self, requests: list[tuple[Attempt, Mapping[str, Any], list[int]]], splits: Splits
    ) -> list[list[FoldResult]]:
        """The folds ``todo`` of each (attempt, candidate's parameters, todo), trained together.

        Args:
            requests: per candidate, its trial's attempt, its estimator parameters and the folds to fit.
            splits: the study's folds.

        Returns:
            Per request, its folds' results in the order of its ``todo``, their epochs already handed to
            its attempt.

        Raises:
            KeyboardInterrupt, StorageError: from recording an epoch (every candidate is interrupted).
        """
        from ..training.fold_population import FoldRequest, fit_folds_as_populations

        asked = [FoldRequest(dict(params), list(todo),
                             lambda fold, epoch, logs, attempt=attempt: attempt.record_epoch(epoch, logs,
                                                                                             fold=fold))
                 for attempt, params, todo in requests]
        return fit_folds_as_populations(self.estimator, asked, self.x, self.y, self.sample_weight, splits,
                                        self.scorer)


class ProcessFitter(FoldFitter):
    """``--jobs N``: fold fits in N spawned processes, each with ``threads`` TensorFlow threads.

    Spawned, not forked (TensorFlow's runtime does not survive a fork); the processes stream each epoch
    back as it ends (:mod:`hpsearch.executors.epoch_stream`; they never open the database: the trial's
    ``Attempt`` here records it), reuse compiled models across the fits of one structure, and die with
    this one.
    Several candidates' trials may wait on the processes at once (``SklearnEngine._run_in_flight``). A
    fold process that dies (the out-of-memory killer, a signal) breaks the pool: the candidates whose fits
    were queued or running are interrupted (``FitProcessLostError``; which candidate's fit killed it is
    not known), keep their finished folds, and are fitted again with fresh processes in the same run.
    """

    def __init__(self, processes: int, threads: int, x: Any, y: Any, sample_weight: Any, estimator: Any,
                 scoring: str, trainer: str, stopping: StopSignal | None = None) -> None:
        from .cluster import StopSignal

        self.processes = processes
        self.threads = threads
        self.payload = (x, y, sample_weight, estimator, scoring, trainer)
        self.stopping = stopping or StopSignal()
        self._executor: Any = None
        self._epochs: Any = None
        self._lock = threading.Lock()

    def _pool(self) -> Any:
        import multiprocessing
        import pickle
        from concurrent.futures import ProcessPoolExecutor

        from .epoch_stream import EpochStream

        # The process start-up: dying with this process, ignoring Ctrl-C, lean Keras, thread sizing.
        from .process_setup import start_fold_process

        with self._lock:
            if self._epochs is None:
                self._epochs = EpochStream()
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_fold_process,
                    # As bytes: unpickling the estimator imports Keras, which the process first slims.
                    initargs=(self.threads, self._epochs.address, self._epochs.authkey,
                              pickle.dumps(self.payload)),
                )
            return self._executor

    def folds(
        self, attempt: Attempt, params: Mapping[str, Any], splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from .fold_tasks import fit_fold_in_process

        pool = self._pool()
        stream, tag = self._epochs, attempt.record.id

        def deliver() -> None:  # the epochs received so far, in this trial's thread
            for fold, epochs in stream.take(tag, todo).items():
                record_fold_epochs(attempt, fold, epochs)

        try:
            futures = [pool.submit(fit_fold_in_process, tag, dict(params), fold, *splits[fold])
                       for fold in todo]
        except BrokenProcessPool as error:  # broken by another candidate's fit, not yet replaced
            self._lost(pool, error)
        pending = set(futures)
        try:
            while pending:
                # Ctrl-C, or another trial's fatal error: this trial stops as interrupted.
                self.stopping.raise_if_set(list(pending))
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                deliver()
                for future in done:
                    try:
                        result, sent = future.result()
                    except BrokenProcessPool as error:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        self._lost(pool, error)
                    except BaseException:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        raise
                    stream.wait_for(tag, result.fold, sent)
                    deliver()
                    yield result
        except GeneratorExit:  # a fold failed: fit no more of this candidate, let running folds end
            for future in futures:
                future.cancel()
            wait(futures)
            # The folds that were running still record their epochs on the trial, as they did alone.
            for future in futures:
                if not future.cancelled() and future.exception() is None:
                    result, sent = future.result()
                    stream.wait_for(tag, result.fold, sent)
            deliver()
            raise
        except FitProcessLostError:  # the broken pool is gone already; a fresh one may be serving others
            raise
        except BaseException:  # Ctrl-C: stop the processes now
            self._stop()
            raise
        finally:
            stream.forget(tag)

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
            stream, self._epochs = self._epochs, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if stream is not None:
            stream.close()


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
    the cluster once (``hpsearch.executors.cluster.share``). A fold's epochs come back with its result and
    are recorded here, so Dask workers never need the database. A worker that dies mid-fit costs only that
    fit: the scheduler runs it again on another worker.
    """

    def __init__(self, client: Any, address: str, data: Any, stopping: Any) -> None:
        self.client = client
        self.address = address
        self.data = data
        self.stopping = stopping

    def folds(
        self, attempt: Attempt, params: Mapping[str, Any], splits: Splits, todo: list[int]
    ) -> Iterator[FoldResult]:
        from .cluster import completed, fit_fold_task, task_key

        name = f"trial{attempt.record.number}"
        futures = [
            self.client.submit(fit_fold_task, self.data, dict(params), fold, *splits[fold],
                               key=task_key("fold", f"{name}-fold{fold}"), pure=False)
            for fold in todo
        ]
        try:
            for fold_result, epochs in completed(futures, self.address, self.stopping):
                record_fold_epochs(attempt, fold_result.fold, epochs)
                yield fold_result
        finally:  # a fold failed (error_score), Ctrl-C, or the cluster went away: fit no more of them
            for future in futures:
                if not future.done():
                    future.cancel()


# -- the sink ------------------------------------------------------------------------------------------
def record_fold_epochs(attempt: Attempt, fold: int, epochs: Epochs) -> None:
    """Hand a fold's epochs, sent back with its result, to the trial's ``attempt`` (the one sink).

    Args:
        attempt: the trial the fold belongs to.
        fold: the fold's index.
        epochs: (epoch, metrics) pairs in the order they were trained.

    Raises:
        StorageError: the store refused them (``Attempt.record_epoch``).
    """
    for epoch, logs in epochs:
        attempt.record_epoch(epoch, logs, fold=fold)
