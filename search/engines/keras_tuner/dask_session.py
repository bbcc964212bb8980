"""The KerasTuner engine's search session on a Dask cluster (``--dask ADDRESS``): one oracle in this
process, each trial a task on the cluster, as many in flight as the cluster has worker threads.

The training of one trial as a task is ``cluster.ClusterSearch.fit_function`` (see ``cluster`` for why
the oracle stays here); this session connects to the cluster, sends the data once, and lets the driver
keep ``width`` trials in flight, each in a thread waiting on its task.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ...training.runner import Attempt, TrialOutcome
from ..session import Fit
from .cluster import ClusterSearch, _shipped
from .search import TrialPlan


class DaskSession(ClusterSearch):
    """One run of the search with every trial trained as a task on the Dask cluster at ``address``."""

    threaded = True
    tuner_prefix = "dask-"

    def start(self, stopping: Any) -> None:
        """Restore the oracle, connect to the cluster and send it the data once.

        Raises:
            UsageError: another worker is searching the study, or ``distributed`` is missing.
            SearchFailedError: the scheduler cannot be reached, or the snapshot cannot be read.
        """
        from ...executors.cluster import connect, share

        super().start(stopping)
        self.client = connect(self.address)
        # The task's wait on its result stops when the driver stops the trials in flight.
        self.in_flight = SimpleNamespace(stopping=stopping)
        self.data = share(self.client, _shipped(self.ctx.dataset), "dataset")

    @property
    def width(self) -> int:
        from ...executors.cluster import slots

        return slots(self.client)

    def fit_function(self, plan: TrialPlan) -> Fit:
        """The task's training, in the driver's thread for this trial (the driver signals its claim)."""
        fit = super().fit_function(plan)

        def train(attempt: Attempt) -> TrialOutcome:
            self._thread.claimed = _claimed_already
            return fit(attempt)

        return train

    def close(self) -> None:
        """Delete the weights no round can continue any more and disconnect, however the run ended."""
        if self.oracle is not None:
            self.collect_weights()
        if self.client is not None:
            self.client.close()


def _claimed_already() -> None:
    """The driver has already signalled the claim of the trial this thread trains."""

