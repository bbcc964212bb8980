"""The engine interface: checking, describing and planning a study, and the search session of a run.

An engine adapter compiles the space into its library's own form and decides *what* to try: its search
session (:mod:`hpsearch.engines.session`) proposes tasks and learns their results. The driver
(:mod:`hpsearch.driver`) decides *when to stop* and the trial runner trains and records, so a budget, a
retry and a failure mean the same thing whichever engine runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..settings import StudySettings

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace
    from hpsearch.storage import TrialRecord

    from ..data import Dataset
    from ..training.context import RunContext
    from .session import SearchSession


#: ``run`` options that only some engines read (each engine lists its own in ``Engine.options``): the CLI
#: passes them through to the study's settings when given, and a resume refuses those the engine does not
#: read. ``--pruner`` is one too, though ``RunOptions`` carries it by name.
ENGINE_OPTIONS = ("cv", "jobs", "max_epochs", "factor", "dask", "min_resources", "halving_resource",
                  "n_candidates", "pack", "trainer", "backend", "population")


class Engine(ABC):
    """One search library behind hpsearch's interface.

    Contract: ``check`` refuses a space or settings the engine cannot run, before any training, with a
    ``UsageError`` or ``SpaceError``; ``describe`` gives the dry-run lines (candidate counts, plans);
    ``session`` gives the search of one run: a ``SearchSession`` that proposes tasks (a proposal and how
    to train it) and learns each result. The driver (``hpsearch.driver.drive``) runs every session's loop:
    it stops on the budget, tries ``ctx.retries`` first, gives up a configuration cut short too often,
    hands each task to the trial runner (which records it) and leaves no trial RUNNING.
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
    def check(self, space: SearchSpace, settings: StudySettings) -> None: ...

    @abstractmethod
    def describe(self, space: SearchSpace, settings: StudySettings) -> list[str]: ...

    @abstractmethod
    def session(self, ctx: RunContext) -> SearchSession:
        """The search of one run of the study (see ``SearchSession``); opens nothing until ``start``.

        Args:
            ctx: the run (store, study, space, data, recorder, budget tracker, retries due).
        """

    def describe_data(self, space: SearchSpace, settings: StudySettings, dataset: Dataset) -> list[str]:
        """Dry-run lines that depend on the data (printed after it); none by default."""
        return []

    def resolved_options(self, space: SearchSpace, settings: StudySettings) -> dict[str, Any]:
        """This engine's options as a run of the study uses them, defaults filled in (a resume compares
        what the user typed with these)."""
        return {key: getattr(settings, key) for key in self.options}

    def planned_trials(self, space: SearchSpace, settings: StudySettings) -> int | None:
        """The trial budget the engine's own plan fixes when ``--trials`` is not given (a whole grid, one
        Hyperband iteration); None for engines that propose until the default budget says stop."""
        return None

    def planned_after_copies(
        self, space: SearchSpace, settings: StudySettings, copied: int
    ) -> int | None:
        """``planned_trials`` of a study that starts with ``copied`` trials of ``--warm-start`` (which never
        use budget): the same plan, unless the plan is a list of candidates the copies already cover."""
        return self.planned_trials(space, settings)

    def copy_identity(self, space: SearchSpace, settings: StudySettings, point: Mapping[str, Any]) -> Any:
        """The identity (``Proposal.identity``) this engine would give ``point``: a ``--warm-start`` copy
        gets it, so a later proposal of the same configuration is refused as a duplicate."""
        return dict(point)

    def short_plan_reason(self, space: SearchSpace, settings: StudySettings, spent: int) -> str:
        """Why a search that neither its budget nor its timeout stopped ended after ``spent`` trials, below
        its trial budget."""
        if settings.algorithm == "grid":
            return f"the space's grid has {space.grid_size()} candidates"
        return "it proposed no further configuration"

    def check_warm_start(self, settings: StudySettings) -> None:  # noqa: B027
        """Raise UsageError when this algorithm cannot start from copied trials (``--warm-start``)."""

    def warm_start_note(self, settings: StudySettings, copied: int) -> str:
        """How this engine uses the ``copied`` trials of ``--warm-start`` (one line for the user)."""
        return f"warm start: the {copied} copied trial(s) rank with the study's own (best, listings)"

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027
        """Create the engine's own persistent state once, before any worker starts (workers racing to
        create it would collide)."""

    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:  # noqa: B027
        """Bring the engine's own state in line after ``interrupted`` trials were failed by resume."""

