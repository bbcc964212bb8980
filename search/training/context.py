"""What one run of a study trains with: its budget, the tracker that says when to stop, and the context
every engine, the driver and the trial runner share.

``Budget`` and ``BudgetTracker`` decide *when to stop*, so a budget means the same thing whichever engine
proposes; ``RunContext`` carries the study, its space and data, the recorder and the tracker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpsearch.storage import Storage, StudyRecord, TrialRecord, TrialState

from ..errors import SearchFailedError
from ..seeds import study_seed
from ..settings import StudySettings

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace

    from ..data import Dataset
    from .recorder import TrialRecorder


@dataclass
class Budget:
    """How much search to do: a trial count, a wall-clock limit, or both (whichever ends first).

    ``trials`` counts trials that ended on their own (complete, pruned, or failed by their own error);
    trials cut short by a crash or Ctrl-C are retried and do not use budget.
    """

    trials: int | None
    timeout_s: float | None = None
    max_consecutive_failures: int = 5
    #: This process stops after this many trials (a worker recycled to shed leaked memory).
    session_trials: int | None = None
    #: This process stops once its resident memory passes this many MiB (checked between trials).
    memory_limit_mb: float | None = None
    started_at: float = field(default_factory=time.monotonic)

    def time_left(self) -> float | None:
        if self.timeout_s is None:
            return None
        return max(0.0, self.timeout_s - (time.monotonic() - self.started_at))


class BudgetTracker:
    """Follows finished trials and says when the search must stop."""

    def __init__(self, storage: Storage, study: StudyRecord, budget: Budget) -> None:
        self.storage = storage
        self.study = study
        self.budget = budget
        self.consecutive_failures = 0
        self.session_failures: list[TrialRecord] = []
        self.session_successes = 0
        self.session_trials = 0
        #: Why this process stopped early, if it did: "recycle" or "memory".
        self.stopped_for: str | None = None
        self.exhausted_budget = False

    def spent(self) -> int:
        return self.storage.budget_usage(self.study.id)[0]

    def remaining(self) -> int | None:
        """Trials still to start: budget minus trials spent and those other workers are running now.

        Advisory: the store checks the budget again, atomically, when a trial is claimed."""
        if self.budget.trials is None:
            return None
        spent, running = self.storage.budget_usage(self.study.id)
        return max(0, self.budget.trials - spent - running)

    def budget_reached(self) -> None:
        """Another worker claimed the last trial of the budget: this process stops."""
        self.exhausted_budget = True

    def trial_finished(self, trial: TrialRecord) -> None:
        self.session_trials += 1
        if trial.state is TrialState.FAILED and not trial.interrupted:
            self.consecutive_failures += 1
            self.session_failures.append(trial)
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.consecutive_failures = 0
            self.session_successes += 1

    def should_stop(self) -> bool:
        if self.exhausted_budget:
            return True
        if self.consecutive_failures >= self.budget.max_consecutive_failures:
            return True
        if self.budget.session_trials is not None and self.session_trials >= self.budget.session_trials:
            self.stopped_for = "recycle"
            return True
        if self.budget.memory_limit_mb is not None and self.session_trials:
            from .recorder import resident_memory_mb

            if resident_memory_mb() > self.budget.memory_limit_mb:
                self.stopped_for = "memory"
                return True
        if self.budget.time_left() == 0.0:
            return True
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def raise_if_search_failed(self) -> None:
        """One message summarising the first errors when the search could not make progress."""
        stopped_by_failures = self.consecutive_failures >= self.budget.max_consecutive_failures
        if not self.session_failures or (self.session_successes and not stopped_by_failures):
            return
        errors: list[str] = []
        for trial in self.session_failures:
            if trial.error and trial.error not in errors:
                errors.append(trial.error)
        shown = "; ".join(errors[:3])
        if stopped_by_failures:
            head = f"the search stopped after {self.consecutive_failures} consecutive failed trials"
        else:
            head = f"every trial failed ({len(self.session_failures)} of {len(self.session_failures)})"
        raise SearchFailedError(f"{head}; first errors: {shown}")


@dataclass
class RunContext:
    """Everything an engine needs for one run (or resume) of a study."""

    storage: Storage
    study: StudyRecord
    space: SearchSpace
    dataset: Dataset
    recorder: TrialRecorder
    tracker: BudgetTracker
    settings: StudySettings
    #: Interrupted trials whose configuration is tried again before new proposals (``retry_policy``).
    retries: list[TrialRecord] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return study_seed(self.settings.seed)
