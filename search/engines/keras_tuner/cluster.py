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

``Tuner.search`` proposes one trial at a time and waits for it, so the oracle is driven directly: one
KerasTuner tuner id per slot, up to as many trials in flight as the cluster has worker threads,
``oracle.create_trial`` for each (Hyperband answers IDLE while a round waits for its last results, and
then the loop waits for a trial to end), ``oracle.end_trial`` as each result comes back. Every trial is
claimed through the trial runner before its task is sent, so the budget and the no-duplicates rule hold
as they do without a cluster.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ...training.runner import Attempt, TrialOutcome
from ...training.work_files import write_durably
from .search import KerasTunerSearch, StopSearch, TrialPlan


class ClusterSearch(KerasTunerSearch):
    """One run of the search with every trial trained as a task on the Dask cluster at ``address``."""

    def __init__(self, ctx: Any, address: str) -> None:
        super().__init__(ctx)
        self.address = address
        self.client: Any = None
        self.data: Any = None
        self.in_flight: Any = None
        self._thread = threading.local()

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Search with trials in flight on the cluster; snapshot the oracle, collect weights, disconnect."""
        from ...executors.cluster import connect, share, trials_in_flight

        self.prepare()
        self.client = connect(self.address)
        try:
            with trials_in_flight(self.ctx.study.name) as self.in_flight:
                self.data = share(self.client, _shipped(self.ctx.dataset), "dataset")
                with self.work_directory():
                    self._search()
                self.save()
        finally:
            self.collect_weights()
            self.client.close()

    def _search(self) -> None:
        from ...executors.cluster import slots

        oracle, in_flight = self.oracle, self.in_flight
        free = [f"dask-{index}" for index in range(256)]
        stop = False
        while True:
            while not stop and len(in_flight) < min(slots(self.client), len(free)):
                if self.ctx.tracker.should_stop():
                    stop = True
                    break
                tuner_id = free.pop(0)
                trial = oracle.create_trial(tuner_id)
                if trial.status == "STOPPED":
                    stop = True
                    free.insert(0, tuner_id)
                    break
                if trial.status == "IDLE":  # Hyperband waits for a round's last results
                    free.insert(0, tuner_id)
                    if len(in_flight):
                        break
                    self.count_idle()
                    continue
                self.trial_began(trial)
                in_flight.start((tuner_id, trial), lambda claimed, trial=trial: self._train(trial, claimed))
            if not len(in_flight):
                return
            for (tuner_id, trial), future in in_flight.next_done():
                if self._settle(trial, future):
                    free.insert(0, tuner_id)
                else:
                    stop = True

    def _train(self, trial: Any, claimed: Any) -> float:
        self._thread.claimed = claimed
        return self.train(trial)

    def _settle(self, trial: Any, future: Any) -> bool:
        """Tell the oracle how a trial ended; False when the run must stop (the budget is used up)."""
        import keras_tuner

        try:
            value = future.result()
        except StopSearch:
            return False  # never trained: the snapshot keeps it for the next run, as without --dask
        except keras_tuner.errors.FailedTrialError as error:
            trial.status = "FAILED"
            trial.message = str(error)
        else:
            self.oracle.update_trial(trial.trial_id, {self.objective: value}, step=0)
            trial.status = "COMPLETED"
        self.oracle.end_trial(trial)
        self.trial_ended(trial)
        return True

    # -- one trial, as a task --------------------------------------------------------------------------
    def fit_function(self, plan: TrialPlan) -> Any:
        """Training as the trial runner calls it: one Dask task, its epochs recorded here."""
        from ...executors.cluster import result, task_key, train_trial_task

        def fit(attempt: Attempt) -> TrialOutcome:
            self._thread.claimed()
            parent = plan.parent_weights.read_bytes() if plan.parent_weights is not None else None
            task = attempt.fit_task(
                plan.config, epochs=plan.epochs, initial_epoch=plan.initial_epoch,
                epoch_offset=plan.initial_epoch,  # numbered within this round, as without --dask
                parent_weights=parent, parent_source=str(plan.parent_weights) if parent else None,
                keep_best=plan.keep_weights is not None,
            )
            future = self.client.submit(train_trial_task, self.data, task,
                                        key=task_key("trial", f"trial{attempt.record.number}"), pure=False)
            report = result(future, self.address, self.in_flight.stopping)
            if report.best_weights is not None and plan.keep_weights is not None:
                _write_atomically(plan.keep_weights, report.best_weights)
            return attempt.outcome(attempt.take(report))

        return fit


def _shipped(dataset: Any) -> Any:
    """What a trial task needs of the data: the train and validation splits (never the test split)."""
    return dataclasses.replace(dataset, x_test=dataset.x_test[:0], y_test=dataset.y_test[:0], w_test=None,
                               preprocessor=None)


def _write_atomically(path: Any, data: bytes) -> None:
    # Flushed and moved into place (hpsearch.training.work_files): a kill or power cut leaves the old or the
    # new file.
    write_durably(path, lambda file: file.write(data))
