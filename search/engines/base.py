"""The engine interface and what every engine shares: budget accounting and failure limits.

An engine adapter compiles the space into its library's own form, drives the library, and reports every
trial through the recorder. It decides *what* to try; the shared code here decides *when to stop*, so a
budget means the same thing whichever engine runs.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpsearch.storage import Storage, StudyRecord, TrialRecord, TrialState

from ..errors import SearchFailedError, UsageError

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace

    from ..data import Dataset
    from ..training.recorder import TrialRecorder


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
            from ..training.recorder import resident_memory_mb

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
    settings: Mapping[str, Any]
    #: Interrupted trials whose configuration must be tried once more before new proposals.
    retries: list[TrialRecord] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 0))


#: ``run`` options that only some engines read (each engine lists its own in ``Engine.options``): the CLI
#: passes them through to the study's settings when given, and a resume refuses those the engine does not
#: read. ``--pruner`` is one too, though ``RunOptions`` carries it by name.
ENGINE_OPTIONS = ("cv", "jobs", "max_epochs", "factor", "dask", "min_resources", "halving_resource",
                  "n_candidates", "pack", "trainer", "backend")


class Engine(ABC):
    """One search library behind hpsearch's interface.

    Contract: ``check`` refuses a space or settings the engine cannot run, before any training, with a
    ``UsageError`` or ``SpaceError``; ``describe`` gives the dry-run lines (candidate counts, plans);
    ``run`` proposes and trains configurations until ``ctx.tracker.should_stop()``, reports every trial
    through ``ctx.recorder``, tries ``ctx.retries`` first, and leaves no trial RUNNING when it returns or
    raises. An exception from one trial must never end ``run``.
    """

    name: str
    algorithms: tuple[str, ...]
    default_algorithm: str
    #: Whether several worker processes (and machines) may run trials of one study at once.
    parallel_workers: bool = False
    #: Engine-specific ``run`` options (settings keys such as ``cv`` or ``max_epochs``) this engine reads.
    options: tuple[str, ...] = ()

    def refuse_foreign_options(self, given: Mapping[str, Any]) -> None:
        """An option another engine reads would be silently ignored here: refuse it instead."""
        foreign = [key for key in given if key not in self.options]
        if foreign:
            flags = ", ".join("--" + key.replace("_", "-") for key in foreign)
            raise UsageError(f"{flags} does not apply to engine '{self.name}'")

    def resolve_algorithm(self, algorithm: str | None) -> str:
        chosen = algorithm or self.default_algorithm
        if chosen not in self.algorithms:
            raise UsageError(
                f"--algorithm must be one of {', '.join(self.algorithms)} for engine '{self.name}', "
                f"but got '{chosen}'"
            )
        return chosen

    @abstractmethod
    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def describe(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[str]: ...

    @abstractmethod
    def run(self, ctx: RunContext) -> None: ...

    def describe_data(self, space: SearchSpace, settings: Mapping[str, Any], dataset: Dataset) -> list[str]:
        """Dry-run lines that depend on the data (printed after it); none by default."""
        return []

    def resolved_options(self, space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
        """This engine's options as a run of the study uses them, defaults filled in (a resume compares
        what the user typed with these)."""
        return {key: settings.get(key) for key in self.options}

    def planned_trials(self, space: SearchSpace, settings: Mapping[str, Any]) -> int | None:
        """The trial budget the engine's own plan fixes when ``--trials`` is not given (a whole grid, one
        Hyperband iteration); None for engines that propose until the default budget says stop."""
        return None

    def planned_after_copies(
        self, space: SearchSpace, settings: Mapping[str, Any], copied: int
    ) -> int | None:
        """``planned_trials`` of a study that starts with ``copied`` trials of ``--warm-start`` (which never
        use budget): the same plan, unless the plan is a list of candidates the copies already cover."""
        return self.planned_trials(space, settings)

    def copy_identity(self, space: SearchSpace, settings: Mapping[str, Any], point: Mapping[str, Any]) -> Any:
        """The identity (``Proposal.identity``) this engine would give ``point``: a ``--warm-start`` copy
        gets it, so a later proposal of the same configuration is refused as a duplicate."""
        return dict(point)

    def short_plan_reason(self, space: SearchSpace, settings: Mapping[str, Any], spent: int) -> str:
        """Why a search that neither its budget nor its timeout stopped ended after ``spent`` trials, below
        its trial budget."""
        if settings.get("algorithm") == "grid":
            return f"the space's grid has {space.grid_size()} candidates"
        return "it proposed no further configuration"

    def check_warm_start(self, settings: Mapping[str, Any]) -> None:  # noqa: B027
        """Raise UsageError when this algorithm cannot start from copied trials (``--warm-start``)."""

    def warm_start_note(self, settings: Mapping[str, Any], copied: int) -> str:
        """How this engine uses the ``copied`` trials of ``--warm-start`` (one line for the user)."""
        return f"warm start: the {copied} copied trial(s) rank with the study's own (best, listings)"

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027
        """Create the engine's own persistent state once, before any worker starts (workers racing to
        create it would collide)."""

    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:  # noqa: B027
        """Bring the engine's own state in line after ``interrupted`` trials were failed by resume."""

