"""One run of a KerasTuner search as the driver's search session: the oracle proposes, the driver trains.

``KerasTunerSearch`` holds the oracle (restored from the study's snapshot, see ``oracle``), each trial's
plan (configuration, epochs, the weights it continues and those it keeps) and Hyperband's weights folder
(see ``weights``). It drives the oracle directly, as ``Tuner.search`` would: ``oracle.create_trial`` for
each proposal (one KerasTuner tuner id per task in flight; Hyperband answers IDLE while a round waits for
its last results), ``oracle.update_trial`` and ``oracle.end_trial`` as each result comes back; with
``--population K`` (random search) up to K trials are created at once, each on its own tuner id. Its
subclasses differ only in where training runs: ``local.LocalSearch`` in this process, one trial at a
time; ``cluster.DaskSession`` as Dask tasks, as many in flight as the cluster has worker threads.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.spaces import resolve_config
from hpsearch.storage import TrialRecord, TrialState

from ...errors import SearchFailedError
from ...training.context import RunContext
from ...training.population_option import population_size
from ...training.runner import Attempt, Proposal, RunResult, RunStatus, TrialOutcome
from ..session import Fit, SearchSession, Task, refuse_other_workers
from .oracle import new_oracle, reconcile, restore_snapshot, save_snapshot, seed_history
from .weights import HyperbandWeights

#: Create-trial calls the oracle may answer IDLE in a row before the search is declared stuck.
MAX_IDLE = 100
#: Tuner ids at most (one per task in flight).
MAX_TUNER_IDS = 256


@dataclass(frozen=True)
class TrialPlan:
    """One KerasTuner trial (one Hyperband round) as the trial runner trains it."""

    proposal: Proposal
    config: dict[str, Any]
    epochs: int | None
    initial_epoch: int
    #: Best-epoch weights of the round this one continues.
    parent_weights: Path | None
    #: Where to keep this round's best-epoch weights, when a later round may continue it.
    keep_weights: Path | None


class KerasTunerSearch(SearchSession):
    """Builds the oracle (restored from the last snapshot), proposes its trials, keeps the snapshot.

    Args:
        ctx: the run of the study this search continues.
    """

    #: The oracle's tuner id of each task in flight: ``<prefix>-<slot>``.
    tuner_prefix = "tuner"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.algorithm = ctx.settings.algorithm
        self.objective = ctx.study.objective
        self.direction = ctx.study.direction
        #: Hyperband's weights between rounds; random and Bayesian searches keep none.
        self.weights = HyperbandWeights(ctx) if self.algorithm == "hyperband" else None
        #: KerasTuner trial id -> number of our latest record of it that ended on its own.
        self.numbers: dict[str, int] = {}
        #: KerasTuner trial id -> number of the interrupted trial its next run retries.
        self.retry_of: dict[str, int] = {}
        self.idle = 0
        self.oracle: Any = None
        #: Tuner ids free for the next proposal (the oracle gives each at most one trial at a time).
        self.free = [f"{self.tuner_prefix}{index}" for index in range(MAX_TUNER_IDS)]
        #: Tasks proposed whose result has not come back.
        self.outstanding = 0
        #: ``--population K``: the most trials asked of the oracle at once to train as populations (0: off).
        #: Random search only (``engine.check`` refuses the others): Hyperband's rounds run their own epochs
        #: and continue weights, which a population does not.
        self.population = (population_size(ctx.settings.population, self.algorithm)
                           if self.algorithm == "random" else 0)

    @abstractmethod
    def fit_function(self, plan: TrialPlan) -> Fit:
        """Training of ``plan`` as the trial runner calls it: ``Attempt -> TrialOutcome``."""

    # -- the session -------------------------------------------------------------------------------
    def start(self, stopping: Any) -> None:
        """Refuse a second worker, restore the oracle, claim Hyperband's weights folder.

        Raises:
            UsageError: another worker is searching the study (one oracle, one process).
            SearchFailedError: the snapshot cannot be read.
        """
        refuse_other_workers(self.ctx, "the keras-tuner engine")
        self.prepare()
        if self.weights is not None:
            self.weights.claim()

    def retry(self, trials: list[TrialRecord]) -> None:
        """Run the KerasTuner trials of ``trials`` again first, unless the oracle has ended them (a snapshot's
        trials due a retry are queued when it is restored, see ``oracle.reconcile``)."""
        for record in trials:
            trial_id = record.engine_trial_id
            trial = self.oracle.trials.get(trial_id) if trial_id is not None else None
            if trial is None or trial_id in self.retry_of or trial.status in ("COMPLETED", "FAILED"):
                continue
            self.retry_of[trial_id] = record.number
            self._run_again(trial)

    def propose(self, room: int | None) -> list[Task] | None:
        """The oracle's next trial, or with ``--population K`` up to K of them (never more than ``room``),
        each on its own tuner id: None once the oracle stops, [] while it waits.

        Raises:
            SearchFailedError: the oracle kept waiting with no trial in flight (see ``count_idle``).
        """
        wanted = 1
        if self.population:
            wanted = self.population if room is None else max(1, min(self.population, room))
        tasks: list[Task] = []
        while len(tasks) < wanted and self.free:
            tuner_id = self.free.pop(0)
            trial = self.oracle.create_trial(tuner_id)
            if trial.status in ("STOPPED", "IDLE"):
                self.free.insert(0, tuner_id)
                if tasks:  # the trials asked so far still train
                    break
                if trial.status == "STOPPED":
                    return None
                if not self.outstanding:  # Hyperband waits for a round's last results: none will come
                    self.count_idle()
                return []
            self.trial_began(trial)
            plan = self.plan_trial(trial)
            self.outstanding += 1
            tasks.append(self.task(plan, tuner_id, trial))
        return tasks

    def task(self, plan: TrialPlan, tuner_id: str, trial: Any) -> Task:
        """``plan`` as the driver's task: alone, or (``--population``, a configuration that can join one, no
        weights continued or kept) keyed to train with the others of its depth and batch size."""
        train_together = self.fit_together()
        key = None
        if (self.population and train_together is not None and plan.parent_weights is None
                and plan.keep_weights is None):
            from ...training.population_model import population_key

            key = population_key(plan.config)
        return Task(plan.proposal, self.fit_function(plan), handle=(tuner_id, trial), pack_key=key,
                    train_together=train_together if key is not None else None)

    def fit_together(self) -> Callable[[list[Task], list[Attempt]], list[TrialOutcome | Exception]] | None:
        """Training of several tasks as one population (``--population``), or None where this search
        trains every trial alone."""
        return None

    def learn(self, task: Task, result: RunResult) -> None:
        """Tell the oracle how the trial ended (a trial the budget stopped stays in the snapshot, to run
        in the next run, and a cut-short one runs again)."""
        tuner_id, trial = task.handle
        self.outstanding -= 1
        if result.status is RunStatus.BUDGET_REACHED:
            return  # never trained: the snapshot keeps it for the next run
        self.free.insert(0, tuner_id)
        if result.status is RunStatus.INTERRUPTED:
            return  # the driver queues its retry (see ``retry``)
        record = result.trial
        if (result.status is RunStatus.FINISHED and record is not None
                and record.state is TrialState.COMPLETE and record.value is not None):
            self.numbers[trial.trial_id] = record.number
            self.oracle.update_trial(trial.trial_id, {self.objective: record.value}, step=0)
            trial.status = "COMPLETED"
        else:
            trial.status = "FAILED"
            trial.message = (record.error if record is not None and record.error
                             else f"not trained: {result.status.value}")
        self.oracle.end_trial(trial)
        self.trial_ended(trial)

    def interrupt(self, task: Task) -> None:
        self.outstanding -= 1  # the snapshot taken as it began shows it running: the next start settles it

    def abandon(self, task: Task) -> None:
        self.outstanding -= 1  # never trained: as for ``interrupt``, the next start runs it

    def finish(self) -> None:
        """Snapshot the oracle and delete the weights no round can continue any more."""
        self.save()
        self.collect_weights()

    def _run_again(self, trial: Any) -> None:
        """Put ``trial`` back in the oracle's queue, to be created again (same values, same round)."""
        for tuner_id, ongoing in list(self.oracle.ongoing_trials.items()):
            if ongoing.trial_id == trial.trial_id:
                del self.oracle.ongoing_trials[tuner_id]
        trial.status = "INVALID"  # not RUNNING: no oracle may score a trial nobody runs
        if trial.trial_id not in self.oracle._retry_queue:
            self.oracle._retry_queue.append(trial.trial_id)

    # -- the oracle --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build the oracle and bring it to where the study stands: its snapshot restored and settled
        with our trial table, or (the first run of a warm-started study) the copies as its history."""
        ctx = self.ctx
        self.oracle = new_oracle(ctx)
        trials = ctx.storage.list_trials(ctx.study.id)
        for record in trials:
            if record.engine_trial_id is not None and record.state.is_finished() and not record.interrupted:
                self.numbers[record.engine_trial_id] = record.number
        if restore_snapshot(ctx, self.oracle):
            self.retry_of.update(reconcile(self.oracle, trials, ctx.retries, self.objective))
        elif self.algorithm != "hyperband" and ctx.settings.warm_start:
            # The first run of a warm-started study: the copies become the oracle's history, kept from
            # then on in its snapshot (so this happens once).
            copies = [record for record in trials if record.copied]
            seed_history(self.oracle, ctx.space, copies, self.objective)

    def save(self) -> None:
        """Snapshot the oracle into the study (one transaction, see ``oracle.save_snapshot``)."""
        save_snapshot(self.ctx, self.oracle)

    # -- the loop's bookkeeping --------------------------------------------------------------------
    def count_idle(self) -> None:
        """Count one create-trial call that brought no trial to run.

        Raises:
            SearchFailedError: more than ``MAX_IDLE`` such calls in a row.
        """
        self.idle += 1
        if self.idle > MAX_IDLE:
            raise SearchFailedError("KerasTuner's oracle kept waiting for a trial that no worker runs")

    def trial_began(self, trial: Any) -> None:
        """The oracle created ``trial``: snapshot it before training, so ``resume`` can find it."""
        self.idle = 0
        self.save()

    def trial_ended(self, trial: Any) -> None:
        """The oracle ended ``trial``: weights no round can continue any more are deleted."""
        self.collect_weights()

    def collect_weights(self) -> None:
        """Delete Hyperband weights no round can continue any more (see ``HyperbandWeights.collect``)."""
        if self.weights is not None:
            self.weights.collect(self.oracle)

    # -- one trial ---------------------------------------------------------------------------------
    def plan_trial(self, trial: Any) -> TrialPlan:
        """What training ``trial`` means: config, epochs, the weights it continues, the weights it keeps."""
        from hpsearch.spaces.compile_keras_tuner import point_from_hyperparameters

        ctx = self.ctx
        values = trial.hyperparameters.values
        point = point_from_hyperparameters(ctx.space, trial.hyperparameters)
        epochs = values.get("tuner/epochs")
        initial_epoch = int(values.get("tuner/initial_epoch", 0)) if epochs is not None else 0
        parent_id = values.get("tuner/trial_id")
        parent_weights = None
        function = ctx.space.train is not None
        if parent_id is not None and function:
            initial_epoch = 0  # a training function runs the round from its first epoch: no weights of ours
        elif parent_id is not None:
            assert self.weights is not None  # only Hyperband continues a trial
            parent_weights = self.weights.usable(parent_id)
            if parent_weights is None:  # gone or damaged: this round trains from its first epoch
                parent_id, initial_epoch = None, 0
        bracket, round_num = values.get("tuner/bracket"), values.get("tuner/round")
        keep_weights = None
        if (self.weights is not None and not function and bracket is not None
                and round_num < bracket):  # a later round goes on
            keep_weights = self.weights.path(trial.trial_id)
        proposal = Proposal(
            point,
            engine_trial_id=trial.trial_id,
            retry_of=self.retry_of.pop(trial.trial_id, None),
            parent_number=self.numbers.get(parent_id) if parent_id is not None else None,
            # A Hyperband round is its own work: the same configuration continued is not a duplicate.
            identity={"values": values},
        )
        return TrialPlan(
            proposal=proposal, config=resolve_config(ctx.space, point),
            epochs=None if epochs is None else int(epochs), initial_epoch=initial_epoch,
            parent_weights=parent_weights, keep_weights=keep_weights,
        )
