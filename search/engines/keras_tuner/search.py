"""One run of a KerasTuner search: what the in-process loop and the Dask loop share.

KerasTuner's oracle decides what to try; hpsearch trains. ``KerasTunerSearch`` holds the oracle (restored
from the study's snapshot, see ``oracle``), the one trial runner that trains and records every trial
(each Hyperband round included), each trial's plan (configuration, epochs, the weights it continues and
those it keeps) and Hyperband's weights folder (see ``weights``). Its subclasses differ in who drives the
oracle and where training runs: ``local.LocalSearch`` lets ``Tuner.search`` drive it and trains in this
process; ``cluster.ClusterSearch`` drives it directly and trains each trial as a Dask task.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.spaces import resolve_config
from hpsearch.storage import TrialState

from ...errors import SearchFailedError
from ...training.runner import Proposal, RunStatus, TrialRunner
from ..base import RunContext
from .oracle import new_oracle, reconcile, restore_snapshot, save_snapshot, seed_history
from .weights import HyperbandWeights

#: Create-trial calls the oracle may answer IDLE in a row before the search is declared stuck.
MAX_IDLE = 100


class StopSearch(Exception):
    """Raised before the oracle creates a trial, when the shared budget says stop."""


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


class KerasTunerSearch(ABC):
    """Builds the oracle (restored from the last snapshot), trains its trials, keeps the snapshot.

    Args:
        ctx: the run of the study this search continues.
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.algorithm = ctx.settings["algorithm"]
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
        self.runner = TrialRunner(ctx)

    @abstractmethod
    def run(self) -> None:
        """Search until the oracle or the budget stops, keeping the snapshot and weights up to date.

        Raises:
            SearchFailedError: the oracle kept waiting, or the snapshot cannot be read.
        """

    @abstractmethod
    def fit_function(self, plan: TrialPlan) -> Any:
        """Training of ``plan`` as the trial runner calls it: ``Attempt -> TrialOutcome``."""

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
        elif self.algorithm != "hyperband" and ctx.settings.get("warm_start"):
            # The first run of a warm-started study: the copies become the oracle's history, kept from
            # then on in its snapshot (so this happens once).
            copies = [record for record in trials if record.copied]
            seed_history(self.oracle, ctx.space, copies, self.objective)

    def save(self) -> None:
        """Snapshot the oracle into the study (one transaction, see ``oracle.save_snapshot``)."""
        save_snapshot(self.ctx, self.oracle)

    # -- the loop's bookkeeping --------------------------------------------------------------------
    @contextmanager
    def work_directory(self) -> Iterator[Path]:
        """KerasTuner's project directory for the run: Hyperband's claimed weights folder's parent, or a
        temporary directory (random and Bayesian searches write nothing to it) removed at the end."""
        if self.weights is None:
            with tempfile.TemporaryDirectory(prefix="hpsearch-keras-tuner-") as folder:
                yield Path(folder)
            return
        self.weights.claim()
        yield self.weights.folder.parent

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
    def train(self, trial: Any) -> float:
        """Train one KerasTuner trial through the trial runner; return its objective value.

        Raises:
            StopSearch: the budget is used up (the trial was never trained).
            keras_tuner.errors.FailedTrialError: the trial failed, or was not trained.
        """
        import keras_tuner

        plan = self.plan_trial(trial)
        result = self.runner.run(plan.proposal, self.fit_function(plan))
        if result.status is RunStatus.BUDGET_REACHED:
            self.ctx.tracker.budget_reached()
            raise StopSearch
        if result.status is not RunStatus.FINISHED:
            raise keras_tuner.errors.FailedTrialError(f"not trained: {result.status.value}")
        record = result.trial
        assert record is not None
        if record.state is not TrialState.COMPLETE or record.value is None:
            raise keras_tuner.errors.FailedTrialError(record.error or "failed")
        self.numbers[trial.trial_id] = record.number
        return record.value

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
        if parent_id is not None:
            assert self.weights is not None  # only Hyperband continues a trial
            parent_weights = self.weights.usable(parent_id)
            if parent_weights is None:  # gone or damaged: this round trains from its first epoch
                parent_id, initial_epoch = None, 0
        bracket, round_num = values.get("tuner/bracket"), values.get("tuner/round")
        keep_weights = None
        if self.weights is not None and bracket is not None and round_num < bracket:  # a later round goes on
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
