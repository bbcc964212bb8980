"""Running and resuming studies: the one place that ties space, data, storage and engine together.

``run_study`` creates a study (or refuses an existing name unless asked to resume), ``resume_study``
continues one after checking that nothing it depends on changed, and ``join_study`` adds workers to one
that others run. Settings are built and compared in ``hpsearch.study_settings``, the space and data in
``hpsearch.study_inputs``; the trials are trained by ``hpsearch.study_execution``. Whatever stops a run
(budget, Ctrl-C, a crash), completed trials are already committed; the in-flight trial is failed as
interrupted and retried on resume.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hpsearch.spaces import (
    SearchSpace,
    SpaceError,
    check_objective,
    import_function,
    importable_in_other_processes,
    load_space,
)
from hpsearch.spaces.functions import known_in_this_process
from hpsearch.storage import (
    Storage,
    StoreLocation,
    StudyExistsError,
    StudyNotFoundError,
    StudyRecord,
    open_storage,
)

from .engines.registry import get_engine
from .errors import UsageError
from .limits import check_seconds, listing_problem
from .names import check_study_name
from .recovery import fail_abandoned_trials
from .retry_policy import trials_to_retry
from .runtime.backends import study_backend, use_backend_here
from .seeds import data_split_seed
from .settings import StudySettings
from .study_execution import StudyRun, launch, run_context
from .study_inputs import (
    function_study_data,
    load_data,
    load_study_dataset,
    refuse_changed_inputs,
    study_space,
)
from .study_options import DEFAULT_DATA, DEFAULT_SPACE, DEFAULT_STORAGE, Isolation, RunOptions
from .study_report import print_dry_run
from .study_settings import (
    given_options,
    new_study_budget,
    new_study_settings,
    package_versions,
    run_budget,
    settings_changes,
    stored_budget,
)
from .training.checkpoints import study_checkpoints
from .training.reproducibility import ENVIRONMENT_SETTING, changes_since, numerical_environment
from .warm_start import (
    WARM_START_SETTING,
    WarmStartPlan,
    check_resumed_sources,
    parse_sources,
    plan_warm_start,
)

if TYPE_CHECKING:
    from .data import Dataset, InMemoryData
    from .engines.base import Engine
    from .executors.supervisor import EarlyWorkers

#: Why ``--in-process`` cannot train on a backend other than the one this process loaded.
IN_PROCESS_BACKEND = "drop --in-process to train in worker processes, which start on the study's backend"


def run_study(options: RunOptions, out: TextIO = sys.stdout) -> StudyRecord | None:
    """Create and run a study, or with ``options.resume`` continue an existing one of that name.

    Returns the study as stored once the run ended, or None for a dry run (nothing is trained or written).

    Raises:
        UsageError, SpaceError, DataError: options, space or data that cannot be run, before any study
            is created.
        StudyExistsError: the study exists and ``options.resume`` is not set.
        StudyMismatchError: resuming with inputs or settings that would change what the trials mean.
        SearchInterrupted, SearchFailedError, StorageTroubleError: as ``study_execution.launch``.
    """
    if options.study is not None:
        # An empty name used to be replaced by the default silently; a long one is checked once we know
        # whether the study exists (an existing study keeps its name).
        check_study_name(options.study, length=not options.resume)
    space = options.space
    if not isinstance(space, SearchSpace):  # the Python API may hand over a space already loaded
        space = load_space(space or DEFAULT_SPACE)
    if space.train is not None:
        # A function that does not import is refused (exit 2) before any study or worker exists.
        import_function(space.train, "training function")
    engine = get_engine(options.engine)
    settings = new_study_settings(options, engine)
    options = dataclasses.replace(options, isolation=_isolation_for(space, options.isolation, settings, out))
    options.isolation.check(engine)
    # Before the plan (which may be the whole grid) is taken as the budget, and before any study exists.
    grid_problem = listing_problem(space, settings, engine.name)
    if grid_problem is not None and not options.dry_run:
        raise UsageError(grid_problem)
    budget = new_study_budget(options, space, engine, settings)
    settings = settings.with_changes({"trials": budget.trials})
    engine.check(space, settings)
    if options.isolation.in_process and not options.dry_run:
        use_backend_here(settings, why=IN_PROCESS_BACKEND)
    task = options.task or space.task
    location = StoreLocation.parse(options.storage)
    sources = parse_sources(options.warm_start)
    if sources:
        engine.check_warm_start(settings)

    if options.dry_run:
        dataset = _load_new_study_data(options, space, task, data_split_seed(settings.seed))
        print_dry_run(space, engine, settings, dataset, budget, grid_problem, out)
        _print_notes(dataset, out)
        if sources:
            # Read only: the plan shows what a real run would copy and skip.
            plan = _warm_start_plan(open_storage(location, create=False), options, space, engine, settings,
                                    dataset)
            for line in plan.lines():
                print(line, file=out)
        return None

    name = options.study if options.study is not None else default_study_name(
        _data_name(options, space), engine.name, settings.algorithm or "")
    # A new study's workers start importing TensorFlow now, while the data loads and the study is created
    # (a resume starts them once it has read the study's settings).
    with _early_workers(options.isolation, name, location, settings, start=not options.resume) as early:
        # Bad data is refused before the database is even created; a resume reloads data from the study.
        dataset = None
        if not options.resume:
            dataset = _load_new_study_data(options, space, task, data_split_seed(settings.seed))
        storage = open_storage(location)
        existing = _find_study(storage, name)
        if existing is not None:
            if not options.resume:
                raise StudyExistsError(name, location.shown)
            if sources:
                check_resumed_sources(existing, sources)
            refuse_changed_inputs(
                existing, space=space, engine=engine.name, algorithm=settings.algorithm,
                data=options.data if space.train is None else None, target=options.target,
                drop=options.drop or None,
            )
            return _resume(storage, existing, given=given_options(options), progress=options.progress,
                           isolation=options.isolation, out=out)

        check_study_name(name)  # a new study: its name's length too (run --resume of a missing study)
        if dataset is None:
            dataset = _load_new_study_data(options, space, task, data_split_seed(settings.seed))
        plan = None
        if sources:
            # Planned before the study exists: a bad source leaves nothing behind.
            plan = _warm_start_plan(storage, options, space, engine, settings, dataset, name=name)
            settings = settings.with_changes({WARM_START_SETTING: sources})
            if options.trials is None and plan.copies:
                # A plan that lists candidates (a whole grid) has fewer left to fit once copies cover some.
                planned = engine.planned_after_copies(space, settings, len(plan.copies))
                budget = run_budget(planned, options.timeout_s, settings.max_failures, None)
                settings = settings.with_changes({"trials": budget.trials})
        backend = study_backend(settings)
        if not isinstance(options.data, str):
            # Data given in memory lives in the study's own database, where every reload finds it.
            storage.put_data(options.data.format, options.data.payload)
        study = storage.create_study(
            name,
            engine=engine.name,
            algorithm=settings.algorithm,
            objective=space.objective,
            direction=space.direction,
            space=space.to_dict(),
            dataset={**dataset.reference, "fingerprint": dataset.fingerprint, "summary": dataset.summary()},
            settings=settings.with_changes({"space_source": space.source,
                                            ENVIRONMENT_SETTING: numerical_environment(backend)}).to_record(),
            versions=package_versions(backend),
        )
        print(f"study '{name}' created in {location.shown}: {dataset.summary()}", file=out)
        _print_notes(dataset, out)
        if plan is not None:
            # Copied once, here: a resume continues with them and never copies again.
            copied = storage.copy_trials(study.id, list(plan.copies))
            for line in plan.lines():
                print(line, file=out)
            if copied:
                print(engine.warm_start_note(settings, len(copied)), file=out)
        return launch(StudyRun(storage, study, space, dataset, engine, budget), options.progress,
                      options.isolation, out, early)


def _load_new_study_data(options: RunOptions, space: SearchSpace, task: str, seed: int) -> Dataset:
    """The data ``options`` name, refused when ``space``'s objective does not fit its task; none for a
    space with a training function (which loads its own), refusing data options given with it."""
    if space.train is not None:
        given = {"--data": None if options.data in (None, DEFAULT_DATA) else options.data,
                 "--target": options.target, "--class-weight": options.class_weight,
                 "--sample-weight": options.sample_weight}
        return function_study_data(space, task, given)  # type: ignore[return-value]
    dataset = load_data(options.data, options.target, task, seed, options.class_weight,
                        options.sample_weight, options.drop)
    check_objective(space, dataset.task, dataset.n_classes)
    if space.model is not None:
        from hpsearch.spaces import check_model_function

        from .training.fit import task_info

        check_model_function(space, task_info(dataset))
    return dataset


def _print_notes(dataset: Dataset, out: TextIO) -> None:
    for note in dataset.notes:
        print(f"note: {note}", file=out)


def _warm_start_plan(
    storage: Storage, options: RunOptions, space: SearchSpace, engine: Engine, settings: StudySettings,
    dataset: Dataset, *, name: str | None = None,
) -> WarmStartPlan:
    return plan_warm_start(
        storage, study_name=name or options.study or "", sources=parse_sources(options.warm_start),
        space=space, engine=engine, settings=settings,
        dataset={**dataset.reference, "fingerprint": dataset.fingerprint},
    )


def resume_study(
    name: str,
    storage_url: str = DEFAULT_STORAGE,
    *,
    trials: int | None = None,
    timeout_s: float | None = None,
    space: str | None = None,
    engine: str | None = None,
    data: str | None = None,
    target: str | None = None,
    given: dict[str, Any] | None = None,
    progress: bool = True,
    isolation: Isolation | None = None,
    out: TextIO = sys.stdout,
) -> StudyRecord:
    """Continue a study to its budget (or a new ``trials`` total), refusing if its inputs changed.

    ``given`` holds other options the user typed (``seed``, ``max_failures``, ``jobs``, ...): those in
    RESUME_APPLIES are recorded in the study's settings and used, those in RESUME_REFUSES must match.

    Raises:
        StudyNotFoundError: no study of that name.
        StudyMismatchError: a space, engine, data, target or setting that would change what the trials
            mean.
        UsageError, SearchInterrupted, SearchFailedError, StorageTroubleError: as ``run_study``.
    """
    storage = open_storage(storage_url, create=False)
    study = storage.get_study(name)
    refuse_changed_inputs(
        study, space=load_space(space) if space else None, engine=engine, algorithm=None, data=data,
        target=target,
    )
    options = {**(given or {}), "trials": trials, "timeout_s": timeout_s}
    return _resume(storage, study, given={k: v for k, v in options.items() if v is not None},
                   progress=progress, isolation=isolation or Isolation(), out=out)


def join_study(
    name: str,
    storage_url: str = DEFAULT_STORAGE,
    *,
    isolation: Isolation | None = None,
    progress: bool = True,
    out: TextIO = sys.stdout,
) -> StudyRecord:
    """Add workers to a study that others may be running (engines that coordinate workers only).

    Raises:
        UsageError: the study's engine runs one worker at a time.
        StudyNotFoundError, SearchInterrupted, SearchFailedError: as ``resume_study``.
    """
    storage = open_storage(storage_url, create=False)
    study = storage.get_study(name)
    if not get_engine(study.engine).parallel_workers:
        raise UsageError(
            f"study '{name}' uses engine '{study.engine}', which runs one worker at a time; "
            f"continue it with `hpsearch resume {shlex.quote(name)}` once no other process runs it"
        )
    return _resume(storage, study, given={}, progress=progress, isolation=isolation or Isolation(), out=out)


def _resume(
    storage: Storage,
    study: StudyRecord,
    *,
    given: dict[str, Any],
    progress: bool,
    isolation: Isolation,
    out: TextIO,
) -> StudyRecord:
    """Apply ``given`` to ``study``, fail its abandoned trials, and train it on to its budget."""
    space = study_space(study)
    engine = get_engine(study.engine)
    isolation.check(engine)
    changes = settings_changes(study, engine, space, given)
    settings = StudySettings.from_record(study.settings).with_changes(changes)
    isolation = _isolation_for(space, isolation, settings, out)
    # Checked before anything is written: a bad number must not end up in the study's settings.
    # A stored timeout is a per-session limit: a resumed run gets the same again, not what is left.
    budget = stored_budget(settings, settings.timeout_s, "--trials" if "trials" in changes else None)
    check_seconds("--stale-after", settings.stale_after_s)
    engine.check(space, settings)
    grid_problem = listing_problem(space, settings, engine.name)  # a limit lowered since the study began
    if grid_problem is not None:
        raise UsageError(grid_problem)
    if isolation.in_process:
        use_backend_here(settings, why=IN_PROCESS_BACKEND)
    # The workers start importing TensorFlow now, while the data reloads and the study is reconciled.
    with _early_workers(isolation, study.name, storage.location, settings) as early:
        dataset = load_study_dataset(study, storage)
        if changes:
            study = storage.update_study_settings(study.id, changes)
            shown = ", ".join(f"{key} {value}" for key, value in changes.items())
            print(f"study '{study.name}' settings updated: {shown}", file=out)

        settings = StudySettings.from_record(study.settings)
        backend = study_backend(settings)
        for line in changes_since(study.versions, settings.environment,
                                  package_versions(backend), numerical_environment(backend)):
            print(f"warning: study '{study.name}' was created with {line}: the trials from here on may "
                  "differ from those an uninterrupted run would have trained", file=sys.stderr)
        interrupted = fail_abandoned_trials(storage, study)
        probe = run_context(storage, study, space, dataset, budget, [])
        if interrupted:
            engine.recover(probe, interrupted)
            numbers = ", ".join(f"#{trial.number}" for trial in interrupted)
            print(f"marked {len(interrupted)} interrupted trial(s) as FAILED: {numbers}", file=out)
        retries = trials_to_retry(storage, study)
        checkpoints = study_checkpoints(storage.location, study, settings)
        # Only a running trial or one due its retry can continue from a checkpoint.
        checkpoints.sweep({t.number for t in retries} | {t.number for t in storage.running_trials(study.id)})
        if retries:
            shown = []
            for trial in retries:
                saved = checkpoints.epochs_saved(trial.number)
                shown.append(f"#{trial.number}" + (f" (continuing after epoch {saved})" if saved else ""))
            print(f"retrying the configuration of trial(s) {', '.join(shown)}", file=out)
        remaining = probe.tracker.remaining()
        to_go = remaining if remaining is not None else "unbounded"
        print(f"resuming study '{study.name}' ({study.engine}/{study.algorithm}): "
              f"{probe.tracker.spent()} trials done, {to_go} to go", file=out)
        return launch(StudyRun(storage, study, space, dataset, engine, budget, retries), progress, isolation,
                      out, early)


def _isolation_for(
    space: SearchSpace, isolation: Isolation, settings: StudySettings, out: TextIO
) -> Isolation:
    """How a study whose space names a function that other processes cannot import must run: here.

    Such a function (a lambda, a nested function, one defined in a notebook or a script's ``__main__``)
    exists only in this process, so one worker trains in this process; anything that needs other
    processes is refused.

    Raises:
        UsageError: the function is unknown to this process (a study resumed from another one), or the
            run asks for several workers, fold processes or Dask.
        SpaceError: the function's module does not import or has no such function.
    """
    reference = space.function
    if reference is None:
        return isolation
    if importable_in_other_processes(reference):
        # Here first: a module that no longer imports is one sentence now, not a failure in every trial.
        try:
            import_function(reference, "model function" if space.model else "training function")
        except SpaceError as error:
            raise error.with_source(space.source) from None
        return isolation
    fix = "define it at the top level of a module file (e.g. models.py) and pass models.build"
    if not known_in_this_process(reference):
        raise UsageError(f"the study's function {reference!r} was defined in another process (a notebook, a "
                         f"script or a lambda) and cannot be imported here; {fix}, or resume from the "
                         "process that defined it")
    wanted = [what for what, used in (
        (f"--workers {isolation.workers}", isolation.workers > 1),
        (f"--jobs {settings.jobs}", settings.jobs not in (None, 1)),
        ("--dask", settings.dask is not None),
    ) if used]
    if wanted:
        raise UsageError(f"the function {reference!r} cannot be imported by other processes (it is a lambda, "
                         f"a nested function or defined in a notebook or script), so {', '.join(wanted)} "
                         f"cannot train it; {fix}, or run with one worker")
    if not isolation.in_process:
        print(f"note: {reference!r} is defined in this process only, so the trials train in this process",
              file=out)
    return dataclasses.replace(isolation, in_process=True)


def _early_workers(isolation: Isolation, name: str, location: StoreLocation, settings: StudySettings, *,
                   start: bool = True) -> EarlyWorkers:
    """The run's first workers, started now so their imports overlap its set-up (none in-process)."""
    from .executors.supervisor import EarlyWorkers, WorkerLaunch

    if isolation.in_process or not start:
        return EarlyWorkers(None)
    return EarlyWorkers(WorkerLaunch(name, location.url, settings, isolation.workers,
                                     isolation.recycle_after, isolation.memory_limit_mb))


def _data_name(options: RunOptions, space: SearchSpace) -> str:
    """What a new study's default name starts with: its data, or its training function's name."""
    if space.train is not None:
        return space.train.rpartition(":")[2].rpartition(".")[2]
    return options.data


def _find_study(storage: Storage, name: str) -> StudyRecord | None:
    try:
        return storage.get_study(name)
    except StudyNotFoundError:
        return None


def default_study_name(data: str | InMemoryData, engine: str, algorithm: str) -> str:
    """A new study's name when ``--study`` is not given: the data's stem (``dataframe``, ``arrays`` for
    data given in memory), engine, algorithm and UTC time."""
    stem = data.stem if not isinstance(data, str) else Path(data).stem or data
    return f"{stem}-{engine}-{algorithm}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
