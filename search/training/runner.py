"""The trial runner: the one place where a proposed configuration becomes a recorded trial.

Engines only propose (an Optuna trial, a KerasTuner trial, a scikit-learn candidate) and say how to
train it; the runner holds the rules every trial obeys, whichever engine proposed it, as scikit-learn's
``BaseSearchCV`` owns evaluation while each search only proposes candidates:

- **claim**: the trial is inserted RUNNING only if the study's budget has room and the configuration was
  not tried before (both checked in the inserting transaction, so K workers stop at exactly the budget
  and never train one configuration twice, unless a retry of an interrupted trial says so);
- **liveness**: while it trains, a heartbeat thread of this process refreshes the trial every few
  seconds, however long an epoch takes (see :mod:`hpsearch.recovery` for the staleness rule);
- **epochs**: each epoch is recorded as it ends; a non-finite loss stops training and fails the trial;
- **finish exactly once**: COMPLETE, PRUNED or FAILED in one conditional update; if recovery already
  failed the trial (its worker was paused past the grace period), the late result is refused and logged;
- **whose fault**: an exception from training fails that trial and the search goes on; Ctrl-C marks it
  interrupted (retried on resume); a database error is not the configuration's fault: the trial is marked
  interrupted if the database still answers, and the worker stops with one clear message.
"""

from __future__ import annotations

import enum
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpsearch.storage import (
    EPOCHS_RESTORED_METRIC,
    BudgetReachedError,
    DuplicateTrialError,
    StorageError,
    TrialNotRunningError,
    TrialRecord,
    TrialState,
    config_key,
)

from ..errors import ClusterLostError, FitProcessLostError, StorageTroubleError
from ..seeds import training_seed
from ..settings import StudySettings
from .checkpoints import CHECKPOINT_MIN_EPOCHS, EpochCheckpoint, study_checkpoints
from .fit import (
    EpochRecorderCallback,
    FitResult,
    NonFiniteLossError,
    describe_error,
    fit_config,
)
from .packing import PackMember

if TYPE_CHECKING:
    from .context import RunContext
    from .fit_tasks import FitReport, FitTask
    from .population_model import PopulationMember

#: Metric of a trial that continued an interrupted one: the epochs it restored instead of training.
EPOCHS_RESTORED = EPOCHS_RESTORED_METRIC
#: Metric of a cross-validated trial that continued an interrupted one: the folds it kept.
FOLDS_RESTORED = "folds_restored"
#: The error text of a trial stopped by Ctrl-C or SIGTERM.
USER_INTERRUPT = "interrupted by the user (Ctrl-C)"
#: Seconds between heartbeats at most; shorter when the study's grace period is short.
HEARTBEAT_S = 5.0
#: A RUNNING trial whose heartbeat is older than this many seconds is taken as abandoned (default).
DEFAULT_STALE_AFTER_S = 60.0


def stale_after_s(settings: StudySettings) -> float:
    """The study's grace period: how long a trial may go without a heartbeat before it is failed."""
    value = settings.stale_after_s
    return DEFAULT_STALE_AFTER_S if value is None else float(value)


def heartbeat_interval(settings: StudySettings) -> float:
    """Beat often enough that one late beat never makes a live trial look stale."""
    return max(0.2, min(HEARTBEAT_S, stale_after_s(settings) / 4))


# -- what engines hand the runner, and what they get back -----------------------------------------------
@dataclass(frozen=True)
class Proposal:
    """One configuration an engine wants trained.

    ``params`` are recorded as the trial's parameters; ``identity`` (default: ``params``) is what makes
    two proposals the same work, for the no-duplicates rule (a Hyperband round adds its round to it).
    """

    params: Mapping[str, Any]
    engine_trial_id: str | None = None
    retry_of: int | None = None
    parent_number: int | None = None
    identity: Any = None


@dataclass(frozen=True)
class TrialOutcome:
    """How training ended, as the engine judges it (the runner records it)."""

    state: TrialState
    value: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def complete(cls, value: float, metrics: Mapping[str, float]) -> TrialOutcome:
        return cls(TrialState.COMPLETE, value=value, metrics=metrics)

    @classmethod
    def pruned(cls, value: float | None, metrics: Mapping[str, float]) -> TrialOutcome:
        return cls(TrialState.PRUNED, value=value, metrics=metrics)

    @classmethod
    def failed(cls, error: str, metrics: Mapping[str, float] | None = None) -> TrialOutcome:
        return cls(TrialState.FAILED, metrics=dict(metrics or {}), error=error)


class RunStatus(enum.Enum):
    #: Trained and recorded in a final state (see ``RunResult.trial``).
    FINISHED = "finished"
    #: Not trained: the configuration was already tried in this study.
    DUPLICATE = "duplicate"
    #: Not trained: other workers already used the trial budget.
    BUDGET_REACHED = "budget reached"
    #: Trained, but recovery had failed the trial meanwhile: the result was refused.
    SUPERSEDED = "superseded"
    #: Cut short by a lost fitting process (``FitProcessLostError``): recorded FAILED and interrupted (see
    #: ``RunResult.trial``), for the engine to fit again.
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    trial: TrialRecord | None = None
    duplicate_of: int | None = None

    @property
    def value(self) -> float | None:
        return self.trial.value if self.trial is not None else None


# -- heartbeats -----------------------------------------------------------------------------------------
class Heartbeat:
    """A daemon thread that refreshes the heartbeat of every trial this process is training.

    Liveness must not depend on epoch length: a 10-minute epoch beats as often as a 10 ms one, and a
    worker that is paused (SIGSTOP), hung or cut off stops beating whatever it was doing.
    """

    def __init__(self, storage: Any, interval_s: float) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._trials.add(trial_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="hpsearch-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trials.discard(trial_id)

    def _beat(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            with self._lock:
                trials = sorted(self._trials)
                if not trials:
                    # Nothing in training: the thread ends (the next add() starts another), so a process
                    # that runs one search after another (run --in-process in a notebook or a test) does
                    # not keep a thread, and with it a storage connection, per search.
                    self._thread = None
                    return
            try:
                self.storage.beat(trials)
            except Exception as error:  # noqa: BLE001 - a missed beat is retried; the trial's own writes report
                print(f"note: heartbeat not written ({error}); retrying", file=sys.stderr, flush=True)


# -- one trial in training ------------------------------------------------------------------------------
class Attempt:
    """What an engine's training function gets: the recorded trial and the ways to report on it.

    It is the one sink of a trial's epochs, wherever they train: ``fit`` and packs record them as they
    end, and an executor that trains elsewhere (a ``--jobs`` fold process, a Dask task) sends them back
    to ``record_epoch`` or ``take``; no executor opens the database.
    """

    def __init__(self, runner: TrialRunner, record: TrialRecord) -> None:
        self.runner = runner
        self.record = record
        #: Results reported so far (a finished fold), kept on the trial however it ends.
        self.metrics: dict[str, float] = {}

    @property
    def seed(self) -> int:
        """The trial's training seed (initialisation, data order, dropout), drawn from the study's seed
        and the configuration alone: a configuration trains the same way whichever worker runs it and
        whenever it comes, so a retry after an interruption repeats (or continues) the interrupted
        trial exactly, and a resumed study trains each configuration as the uninterrupted one did."""
        return training_seed(self.runner.ctx.seed, self.record.params)

    def record_epoch(self, epoch: int, logs: Mapping[str, Any] | None, *, fold: int | None = None) -> None:
        self.runner.ctx.recorder.epoch(self.record, epoch, logs, fold=fold)

    def epoch_callback(self, *, epoch_offset: int = 0, fold: int | None = None) -> Any:
        """Keras callback recording each epoch (numbered from ``epoch_offset``) and stopping on NaN."""
        return EpochRecorderCallback(
            lambda epoch, logs: self.record_epoch(epoch - epoch_offset, logs, fold=fold)
        )

    def partial(self, metrics: Mapping[str, float]) -> None:
        """Results that arrive while the trial runs (a finished fold), committed now so a crash keeps them."""
        self.metrics.update(metrics)
        self.runner.ctx.recorder.partial(self.record, metrics)

    def train_function(
        self,
        config: Mapping[str, Any],
        *,
        epochs: int | None = None,
        should_prune: Callable[[int, float], bool] | None = None,
    ) -> TrialOutcome:
        """Train ``config`` with the space's training function (``train:``), its epochs recorded here.

        Args:
            config: the trial's resolved configuration; ``epochs`` (default ``config["epochs"]``) is the
                most epochs its ``report`` may reach in this run (see hpsearch.training.function_fit).
            should_prune: the engine's per-epoch pruner, ``(epoch, objective value) -> stop?``.

        Returns:
            How the trial ended (a value that is no finite number fails it with one sentence).
        """
        from .function_fit import train_function

        reference = self.runner.ctx.space.train
        assert reference is not None, "train_function needs a space with a training function"
        return train_function(self, reference, config, epochs=epochs, should_prune=should_prune)

    def fit(
        self,
        config: Mapping[str, Any],
        *,
        callbacks: Sequence[Any] = (),
        epochs: int | None = None,
        initial_epoch: int = 0,
        epoch_offset: int = 0,
        prepare_model: Callable[[Any], None] | None = None,
    ) -> FitResult:
        """Train ``config`` on the study's data with the shared builder, recording every epoch.

        A fit of at least ``CHECKPOINT_MIN_EPOCHS`` epochs keeps a checkpoint of its last epoch and, as
        the retry of an interrupted trial, continues from the one that trial left
        (hpsearch.training.checkpoints).
        """
        ctx = self.runner.ctx
        total = int(epochs if epochs is not None else config["epochs"])
        checkpoint = self._checkpoint(config, initial_epoch, total)
        result = fit_config(
            config,
            ctx.dataset,
            objective=ctx.study.objective,
            direction=ctx.study.direction,
            callbacks=[self.epoch_callback(epoch_offset=epoch_offset), *callbacks],
            seed=self.seed,
            epochs=epochs,
            initial_epoch=initial_epoch,
            prepare_model=prepare_model,
            checkpoint=checkpoint,
        )
        return self._fitted(result)

    def fit_task(
        self,
        config: Mapping[str, Any],
        *,
        epochs: int | None = None,
        initial_epoch: int = 0,
        epoch_offset: int = 0,
        parent_weights: bytes | None = None,
        parent_source: str | None = None,
        keep_best: bool = False,
    ) -> FitTask:
        """``fit`` as a picklable task for an executor that trains in another process (a Dask worker);
        hand its ``FitReport`` to ``take``.

        The task keeps the checkpoint ``fit`` would keep when the study's checkpoint folder is shared
        (``--checkpoint-dir``): a task run again on another machine, or the trial's retry, continues it.

        Args:
            config: the configuration to train.
            epochs, initial_epoch, epoch_offset: as for ``fit``.
            parent_weights: best-epoch weights of the Hyperband round this one continues, and
                ``parent_source`` the file they came from.
            keep_best: send back this round's best epoch's weights.

        Returns:
            The ``FitTask`` (see :mod:`hpsearch.training.fit_tasks`).
        """
        from .fit_tasks import FitTask

        ctx = self.runner.ctx
        total = int(epochs if epochs is not None else config["epochs"])
        checkpoint = None
        if self.runner.checkpoints.shared:
            checkpoint = self._checkpoint(config, initial_epoch, total)
        if checkpoint is not None:
            # Absolute: the task's worker, started in another folder, reads and writes the same file.
            checkpoint = EpochCheckpoint(checkpoint.path.absolute(), checkpoint.identity)
        return FitTask(dict(config), ctx.study.objective, ctx.study.direction, self.seed, epochs=epochs,
                       initial_epoch=initial_epoch, epoch_offset=epoch_offset, checkpoint=checkpoint,
                       parent_weights=parent_weights, parent_source=parent_source, keep_best=keep_best)

    def take(self, report: FitReport) -> FitResult:
        """What a fit task trained elsewhere sent back: every epoch recorded here, in order, then its result.

        Raises:
            NonFiniteLossError: the loss diverged (the trial fails with that reason, as for ``fit``).
            StorageError: the store refused an epoch.
        """
        for epoch, logs in report.epochs:
            self.record_epoch(epoch, logs)
        if report.non_finite is not None or report.result is None:
            raise NonFiniteLossError(report.non_finite or "the fit task returned no result")
        return self._fitted(report.result)

    def _fitted(self, result: FitResult) -> FitResult:
        if result.resumed_at is not None:
            # Shown with the trial: how much of its curve the interrupted attempt had trained.
            self.metrics[EPOCHS_RESTORED] = float(result.resumed_at)
        return result

    def pack_member(self, config: Mapping[str, Any], *, callbacks: Sequence[Any] = ()) -> PackMember:
        """This trial as a member of a pack (hpsearch.training.packing): its seed, its recorder and
        ``callbacks``,
        and the checkpoint ``fit`` would keep, so that a retry after an interruption continues alone."""
        return PackMember(config, self.seed, callbacks=[self.epoch_callback(), *callbacks],
                          checkpoint=self._checkpoint(config, 0, int(config["epochs"])))

    def population_member(
        self, config: Mapping[str, Any], *, callbacks: Sequence[Any] = ()
    ) -> PopulationMember:
        """This trial as a member of a population (hpsearch.training.population): its seed, its recorder
        and ``callbacks``. It keeps no checkpoint: its retry after an interruption trains from the start."""
        from .population_model import PopulationMember

        return PopulationMember(config, self.seed, callbacks=[self.epoch_callback(), *callbacks])

    def _checkpoint(
        self, config: Mapping[str, Any], initial_epoch: int, total: int
    ) -> EpochCheckpoint | None:
        """The checkpoint of a fit from ``initial_epoch`` to ``total`` (None when too short to keep one);
        the same for a fit alone and a packed one, so a retry alone continues a packed member."""
        if total - initial_epoch < CHECKPOINT_MIN_EPOCHS:
            return None
        dataset = self.runner.ctx.dataset
        # Everything the trained weights depend on besides the study (added by ``for_fit``): a file of
        # other data, another seed or another input width is set aside, never continued.
        identity = {"data": dataset.fingerprint, "seed": self.seed, "features": dataset.n_features,
                    "config": config_key(dict(config)), "initial_epoch": initial_epoch, "epochs": total}
        return self.runner.checkpoints.for_fit(self.record.number, identity)

    def outcome(self, result: FitResult) -> TrialOutcome:
        """COMPLETE with the best epoch's objective, or FAILED when the model never reported it."""
        if result.value is None:
            objective = self.runner.ctx.study.objective
            return TrialOutcome.failed(f"objective '{objective}' was not reported by the model",
                                       result.final_metrics)
        return TrialOutcome.complete(result.value, result.final_metrics)


class _Superseded(Exception):
    """Recovery failed the trial while it trained (its writes are refused from then on)."""


class _Lost(Exception):
    """A fitting process of the trial died; the trial was marked interrupted (``trial``, when recorded)."""

    def __init__(self, trial: TrialRecord | None) -> None:
        super().__init__("a fitting process died")
        self.trial = trial


class TrialRunner:
    """Claims, trains, records and finishes trials for one run of one study (see the module docstring)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.heartbeat = Heartbeat(ctx.storage, heartbeat_interval(ctx.settings))
        self.checkpoints = study_checkpoints(ctx.storage.location, ctx.study, ctx.settings)

    def run(self, proposal: Proposal, train: Callable[[Attempt], TrialOutcome]) -> RunResult:
        """Claim ``proposal`` as a trial, train it with ``train``, record how it ended.

        Returns without training when the budget is used up or the configuration was tried before, and
        INTERRUPTED when a fitting process died (``FitProcessLostError``).
        Raises only KeyboardInterrupt (the trial is recorded as interrupted) and StorageTroubleError.
        """
        record = self._claim(proposal)
        if isinstance(record, RunResult):
            return record
        self.heartbeat.add(record.id)
        self.checkpoints.take_over(record.number, record.retry_of)
        ended = False
        try:
            attempt = Attempt(self, record)
            try:
                outcome = self._train(attempt, train)
            except _Superseded as superseded:
                ended = True
                self._refused(record, str(superseded.__cause__ or superseded))
                return RunResult(RunStatus.SUPERSEDED)
            except _Lost as lost:
                return RunResult(RunStatus.INTERRUPTED, trial=lost.trial)
            result = self._finish(attempt, outcome)
            ended = True
            return result
        finally:
            self.heartbeat.discard(record.id)
            if ended:  # an interrupted trial keeps its checkpoint for its retry
                self.checkpoints.discard(record.number)

    def _claim(self, proposal: Proposal) -> TrialRecord | RunResult:
        """The proposal's RUNNING trial, or why it is not trained (a RunResult)."""
        ctx = self.ctx
        try:
            return ctx.recorder.start(
                proposal.params,
                engine_trial_id=proposal.engine_trial_id,
                retry_of=proposal.retry_of,
                parent_number=proposal.parent_number,
                identity=proposal.identity,
                budget=ctx.tracker.budget.trials,
            )
        except BudgetReachedError:
            return RunResult(RunStatus.BUDGET_REACHED)
        except DuplicateTrialError as duplicate:
            return RunResult(RunStatus.DUPLICATE, duplicate_of=duplicate.number)
        except StorageError as error:
            raise StorageTroubleError(self._trouble(None, error)) from error

    def run_pack(
        self,
        proposals: Sequence[Proposal],
        train: Callable[[list[Attempt]], Sequence[TrialOutcome | Exception]],
    ) -> list[RunResult]:
        """Claim every proposal, train the claimed ones together with ``train`` (hpsearch.training.packing),
        record
        how each ended; one RunResult per proposal, in order.

        ``train`` gives each attempt its outcome, or the exception that ended that attempt alone (judged as
        ``run`` judges a trial's exception). Ctrl-C and a failing database interrupt every member, as they
        interrupt a trial; any other exception of ``train`` fails every member with it.
        """
        results: list[RunResult | None] = [None] * len(proposals)
        attempts: list[tuple[int, Attempt]] = []
        try:
            for index, proposal in enumerate(proposals):
                record = self._claim(proposal)
                if isinstance(record, RunResult):
                    results[index] = record
                    continue
                self.heartbeat.add(record.id)
                self.checkpoints.take_over(record.number, record.retry_of)
                attempts.append((index, Attempt(self, record)))
        except (StorageTroubleError, KeyboardInterrupt) as error:
            why = (USER_INTERRUPT if isinstance(error, KeyboardInterrupt)
                   else "interrupted: the database failed while its pack was claimed")
            for _, attempt in attempts:
                self._interrupt(attempt, why)
                self.heartbeat.discard(attempt.record.id)
            raise
        ended: list[Attempt] = []
        try:
            members = [attempt for _, attempt in attempts]
            try:
                outcomes: Sequence[TrialOutcome | Exception] = train(members) if members else []
            except KeyboardInterrupt:
                for attempt in members:
                    self._interrupt(attempt, USER_INTERRUPT)
                raise
            except StorageError as error:
                for attempt in members:
                    self._interrupt(attempt, f"interrupted: the database failed during the trial ({error})")
                raise StorageTroubleError(self._trouble(members[0].record, error)) from error
            except Exception as error:  # noqa: BLE001 - no member's fault alone, but the search goes on
                outcomes = [error] * len(members)
            for position, ((index, attempt), outcome) in enumerate(zip(attempts, outcomes, strict=True)):
                if isinstance(outcome, TrialNotRunningError):
                    ended.append(attempt)
                    self._refused(attempt.record, str(outcome))
                    results[index] = RunResult(RunStatus.SUPERSEDED)
                    continue
                if isinstance(outcome, Exception):
                    outcome = self._failed_by(attempt, outcome)
                try:
                    results[index] = self._finish(attempt, outcome)
                except StorageTroubleError:
                    for _, rest in attempts[position + 1:]:
                        self._interrupt(rest, "interrupted: the database failed while its pack was recorded")
                    raise
                ended.append(attempt)
        finally:
            for _, attempt in attempts:
                self.heartbeat.discard(attempt.record.id)
            for attempt in ended:  # an interrupted trial keeps its checkpoint for its retry
                self.checkpoints.discard(attempt.record.number)
        return [result for result in results if result is not None]

    def _failed_by(self, attempt: Attempt, error: Exception) -> TrialOutcome:
        """The outcome of a trial whose training raised ``error`` (its own fault: the search goes on)."""
        if isinstance(error, NonFiniteLossError):
            return TrialOutcome.failed(str(error), attempt.metrics)
        return TrialOutcome.failed(describe_error(error), attempt.metrics)

    def _train(self, attempt: Attempt, train: Callable[[Attempt], TrialOutcome]) -> TrialOutcome:
        record = attempt.record
        try:
            return train(attempt)
        except TrialNotRunningError as late:
            raise _Superseded() from late
        except KeyboardInterrupt:
            self._interrupt(attempt, USER_INTERRUPT)
            raise
        except ClusterLostError as error:  # the Dask cluster went away: retried on resume, not counted
            self._interrupt(attempt, f"interrupted: {error}")
            raise
        except FitProcessLostError as error:  # not counted either; the engine fits it again in this run
            print(f"note: trial #{record.number} interrupted: {error}; it is fitted again", file=sys.stderr,
                  flush=True)
            raise _Lost(self._interrupt(attempt, f"interrupted: {error}")) from error
        except StorageError as error:
            self._interrupt(attempt, f"interrupted: the database failed during the trial ({error})")
            raise StorageTroubleError(self._trouble(record, error)) from error
        except Exception as error:  # noqa: BLE001 - one configuration's error must not end the search
            return self._failed_by(attempt, error)

    def _finish(self, attempt: Attempt, outcome: TrialOutcome) -> RunResult:
        recorder, record = self.ctx.recorder, attempt.record
        metrics = {**attempt.metrics, **outcome.metrics}
        try:
            if outcome.state is TrialState.COMPLETE and outcome.value is not None and math.isfinite(
                outcome.value
            ):
                finished = recorder.complete(record, outcome.value, metrics)
            elif outcome.state is TrialState.PRUNED:
                finished = recorder.prune(record, outcome.value, metrics)
            else:
                error = outcome.error or f"the objective value was {outcome.value}"
                finished = recorder.fail(record, error, metrics=metrics)
        except TrialNotRunningError as late:
            self._refused(record, str(late), outcome)
            return RunResult(RunStatus.SUPERSEDED)
        except StorageError as error:
            self._interrupt(attempt, f"interrupted: the database failed while recording the result ({error})")
            raise StorageTroubleError(self._trouble(record, error)) from error
        return RunResult(RunStatus.FINISHED, trial=finished)

    def _interrupt(self, attempt: Attempt, reason: str) -> TrialRecord | None:
        """Mark the trial interrupted (retried on resume), if the database still takes the write; when it
        does not, the trial stays RUNNING and recovery fails it once its heartbeat is stale."""
        try:
            return self.ctx.recorder.fail(attempt.record, reason, interrupted=True, metrics=attempt.metrics)
        except (TrialNotRunningError, StorageError):
            return None

    def _refused(self, record: TrialRecord, why: str, outcome: TrialOutcome | None = None) -> None:
        result = "" if outcome is None else f" ({outcome.state.value.lower()}, value {outcome.value})"
        # Logged, never counted: the trial was failed and its configuration retried elsewhere.
        print(f"note: late result of trial #{record.number}{result} refused: {why}", file=sys.stderr,
              flush=True)

    def _trouble(self, record: TrialRecord | None, error: Exception) -> str:
        study = self.ctx.study.name
        if record is None:
            return f"the database failed while claiming a new trial of study '{study}': {error}"
        return (f"the database failed during trial #{record.number} of study '{study}': {error} (not counted "
                "as a failed trial; its configuration is retried on resume)")
