"""The KerasTuner engine on a Dask cluster (``--dask ADDRESS``): one oracle here, trials as tasks there.

Why not KerasTuner's own chief/worker mode: its chief keeps the oracle in memory and hands trials to
workers over gRPC, with no liveness. A worker killed mid-trial leaves its trial in the chief's
``ongoing_trials`` for good, so Hyperband waits for that round forever and the chief never exits; the
chief killed loses the oracle. Here the oracle stays in the one hpsearch process of the study (its state
snapshotted into the database exactly as without ``--dask``, so ``hpsearch resume`` works the same), and
only training leaves it: each trial (each Hyperband round) is a Dask task that builds the configuration
with the shared builder, trains it (from its parent round's best weights, sent with the task) and returns
its per-epoch logs and, when a later round may continue it, its best epoch's weights
(:mod:`hpsearch.training.fit_tasks`); the trial's ``Attempt`` records the epochs and reads the result as
for a local trial. A Dask worker killed mid-trial costs that trial's progress only: the scheduler runs the
task again on another worker (which continues the in-trial checkpoint when ``--checkpoint-dir`` is a
folder the workers share), and the trial, still claimed and heartbeating here, is recorded once.

The oracle is driven as without ``--dask`` (``search.KerasTunerSearch``, a session of the driver); only
the width differs: up to as many trials in flight as the cluster has worker threads, each in a driver
thread waiting on its task. Every trial is claimed through the trial runner before its task is sent, so
the budget and the no-duplicates rule hold as they do without a cluster.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...training.runner import Attempt, TrialOutcome
from ...training.work_files import write_durably
from ..session import Fit
from .search import KerasTunerSearch, TrialPlan


class DaskSession(KerasTunerSearch):
    """One run of the search with every trial trained as a task on the Dask cluster at ``address``."""

    threaded = True
    tuner_prefix = "dask-"

    def __init__(self, ctx: Any, address: str) -> None:
        super().__init__(ctx)
        self.address = address
        self.client: Any = None
        self.data: Any = None
        #: The driver's signal to the trials in flight: a task's wait on its result ends when it is set.
        self.stopping: Any = None

    def start(self, stopping: Any) -> None:
        """Restore the oracle, connect to the cluster and send it the data once.

        Args:
            stopping: the driver's signal that tells the trials in flight to stop.

        Raises:
            UsageError: another worker is searching the study, or ``distributed`` is missing.
            SearchFailedError: the scheduler cannot be reached, or the snapshot cannot be read.
        """
        from ...executors.cluster import connect, share

        super().start(stopping)
        self.stopping = stopping
        self.client = connect(self.address)
        if self.ctx.space.train is None:  # a training function loads its own data
            self.data = share(self.client, _shipped(self.ctx.dataset), "dataset")

    @property
    def width(self) -> int:
        """As many trials in flight as the cluster has worker threads."""
        from ...executors.cluster import slots

        return slots(self.client)

    def fit_function(self, plan: TrialPlan) -> Fit:
        """Training as the trial runner calls it: one Dask task, its epochs recorded here."""
        from ...executors.cluster import result, task_key, train_trial_task

        if self.ctx.space.train is not None:
            return self._function_fit(plan)

        def fit(attempt: Attempt) -> TrialOutcome:
            parent = plan.parent_weights.read_bytes() if plan.parent_weights is not None else None
            task = attempt.fit_task(
                plan.config, epochs=plan.epochs, initial_epoch=plan.initial_epoch,
                epoch_offset=plan.initial_epoch,  # numbered within this round, as without --dask
                parent_weights=parent, parent_source=str(plan.parent_weights) if parent else None,
                keep_best=plan.keep_weights is not None,
            )
            future = self.client.submit(train_trial_task, self.data, task,
                                        key=task_key("trial", f"trial{attempt.record.number}"), pure=False)
            report = result(future, self.address, self.stopping)
            if report.best_weights is not None and plan.keep_weights is not None:
                _write_atomically(plan.keep_weights, report.best_weights)
            return attempt.outcome(attempt.take(report))

        return fit

    def _function_fit(self, plan: TrialPlan) -> Fit:
        """The space's training function as one Dask task (the worker imports it by its reference), run
        from its first epoch with the round's epochs as its budget; its epochs are recorded here."""
        from ...executors.cluster import result, task_key
        from ...training.function_fit import (
            FunctionTask,
            function_params,
            run_function_task,
            take_function_report,
        )

        def fit(attempt: Attempt) -> TrialOutcome:
            reference = self.ctx.space.train
            assert reference is not None
            task = FunctionTask(reference, function_params(plan.config, plan.epochs), self.objective)
            future = self.client.submit(run_function_task, task,
                                        key=task_key("trial", f"trial{attempt.record.number}"), pure=False)
            return take_function_report(attempt, result(future, self.address, self.stopping))

        return fit

    def close(self) -> None:
        """Delete the weights no round can continue any more and disconnect, however the run ended."""
        if self.oracle is not None:
            self.collect_weights()
        if self.client is not None:
            self.client.close()


def _shipped(dataset: Any) -> Any:
    """What a trial task needs of the data: the train and validation splits (never the test split)."""
    return dataclasses.replace(dataset, x_test=dataset.x_test[:0], y_test=dataset.y_test[:0], w_test=None,
                               preprocessor=None)


def _write_atomically(path: Any, data: bytes) -> None:
    # Flushed and moved into place (hpsearch.training.work_files): a kill or power cut leaves the old or the
    # new file.
    write_durably(path, lambda file: file.write(data))
