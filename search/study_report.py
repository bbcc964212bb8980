"""What a run tells the user about a study besides its progress: the dry-run plan, the end-of-run
summary, and the commands that continue or inspect it.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, TextIO

from hpsearch.spaces import SearchSpace, SpaceError
from hpsearch.storage import Storage, StoreLocation, StudyRecord, TrialState

from .settings import StudySettings
from .study_options import DEFAULT_STORAGE

if TYPE_CHECKING:
    from .data import Dataset
    from .engines.base import Engine
    from .training.context import Budget


def space_summary(space: SearchSpace) -> str:
    """One line on ``space``: where it came from, how many parameters it tunes, and its grid's size."""
    try:
        grid = f"{space.grid_size()} grid candidates"
    except SpaceError:
        grid = "not finite, so not grid-able (give `step` or `grid` to every float)"
    return f"space {space.source}: {len(space.params)} tuned parameters, {grid}"


def resume_command(study: StudyRecord, location: StoreLocation | str) -> str:
    """The command that resumes ``study``, every value shell-quoted (a name may hold spaces or quotes).

    Args:
        study: the study.
        location: its store (``Storage.location``; a URL is parsed).

    Returns:
        The command line, the store's password masked.
    """
    return f"hpsearch resume {shlex.quote(study.name)}{_storage_flag(StoreLocation.of(location))}"


def print_dry_run(
    space: SearchSpace, engine: Engine, settings: StudySettings, dataset: Dataset, budget: Budget,
    grid_problem: str | None, out: TextIO,
) -> None:
    """What ``run --dry-run`` shows: the space, the engine's plan, the data and the budget.

    ``grid_problem`` is why a real run would refuse to list the grid (None: it would not).
    """
    print("dry run: nothing is trained or written", file=out)
    print(space_summary(space), file=out)
    if grid_problem is not None:
        print(f"warning: {grid_problem}; a run would refuse it", file=out)
    for line in engine.describe(space, settings):
        print(line, file=out)
    print(f"data {dataset.summary()}", file=out)
    for line in engine.describe_data(space, settings, dataset):
        print(line, file=out)
    limits = [f"{budget.trials} trials"] if budget.trials else []
    limits += [f"{budget.timeout_s:g} s"] if budget.timeout_s else []
    print(f"budget: {' or '.join(limits)}, objective {space.objective} ({space.direction})", file=out)


def print_summary(
    storage: Storage, study: StudyRecord, space: SearchSpace, seconds: float, out: TextIO, budget: Budget,
    engine: Engine,
) -> None:
    """The end of a run that took ``seconds``: trials by state, why the search ended short of ``budget``
    if it did, and the best trial with the command that shows it."""
    counts = storage.count_trials(study.id)
    states = ", ".join(f"{counts[state]} {state.value.lower()}" for state in TrialState if counts[state])
    interrupted = storage.count_interrupted(study.id) if counts[TrialState.FAILED] else 0
    # An interrupted attempt is FAILED in the store, but not for its configuration: it is retried.
    states += f", {interrupted} of them interrupted" if interrupted else ""
    settings = StudySettings.from_record(study.settings)
    copied = len(storage.copied_trials(study.id)) if settings.warm_start else 0
    states += f"; {copied} of them copied by --warm-start" if copied else ""
    print(f"study '{study.name}': {sum(counts.values())} trials ({states}) after {seconds:.1f} s", file=out)
    spent, running = storage.budget_usage(study.id)
    if budget.trials is not None and spent + running < budget.trials and budget.time_left() != 0.0:
        # Neither the budget (trials still running in another command count) nor the clock stopped it:
        # the engine ran out of proposals. Say so, or the progress line's "[5/6]" reads as trials lost.
        why = engine.short_plan_reason(space, settings, spent)
        print(f"the {study.engine} {study.algorithm} search ended after {spent} of its {budget.trials} "
              f"trials: {why}", file=out)
    best = storage.best_trials(study.id, 1)
    if best:
        origin = f" (copied from study {best[0].copied_from})" if best[0].copied else ""
        print(f"best trial #{best[0].number}: {study.objective} = {best[0].value:.6g}{origin}", file=out)
        print(f"show it with: hpsearch best {shlex.quote(study.name)}{_storage_flag(storage.location)}",
              file=out)


def _storage_flag(location: StoreLocation) -> str:
    """``--storage URL`` for a printed command, password masked (set HPSEARCH_STORAGE to run it), quoted
    for a shell."""
    return "" if location.url == DEFAULT_STORAGE else f" --storage {shlex.quote(location.safe_url)}"
