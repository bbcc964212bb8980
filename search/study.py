"""Running and resuming studies: the one place that ties space, data, storage and engine together.

``run_study`` creates a study (or refuses an existing name unless asked to resume), ``resume_study``
continues one after checking that nothing it depends on changed, and both hand the engine a context in
which every trial goes through the recorder. Whatever stops a run (budget, Ctrl-C, a crash), completed
trials are already committed; the in-flight trial is failed as interrupted and retried on resume.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hpsearch.spaces import SearchSpace, check_objective, load_space, space_from_dict
from hpsearch.storage import (
    Storage,
    StudyExistsError,
    StudyRecord,
    TrialState,
    display_name,
    normalize_url,
    open_storage,
    safe_url,
)

from .engines.base import ENGINE_OPTIONS, Budget, BudgetTracker, Engine, RunContext, get_engine
from .errors import StorageTroubleError, StudyMismatchError, UsageError
from .limits import TRIALS, WORKERS, check_seed, listing_problem
from .names import check_study_name
from .recovery import fail_abandoned_trials, trials_to_retry
from .runtime.backends import study_backend, use_backend_here
from .training.checkpoints import CHECKPOINT_DIR_SETTING, study_checkpoints
from .training.recorder import TrialRecorder, current_worker
from .training.reproducibility import ENVIRONMENT_SETTING, changes_since, numerical_environment
from .training.runner import DEFAULT_STALE_AFTER_S
from .warm_start import (
    WARM_START_SETTING,
    WarmStartPlan,
    check_resumed_sources,
    parse_sources,
    plan_warm_start,
)

if TYPE_CHECKING:
    from .data import Dataset
    from .executors.supervisor import EarlyWorkers

DEFAULT_SPACE = "default"
DEFAULT_DATA = "digits"
DEFAULT_TRIALS = 10
DEFAULT_STORAGE = "sqlite:///hpsearch.db"
#: A worker is replaced after this many trials: Keras leaks 7-8 MB per trial inside one process.
DEFAULT_RECYCLE_AFTER = 50
#: ... or once its resident memory passes this many MiB.
DEFAULT_MAX_WORKER_MEMORY_MB = 4096.0

#: Options a resume may change: recorded in the study's settings and used from then on.
RESUME_APPLIES = ("trials", "timeout_s", "max_failures", "jobs", "pruner", "stale_after_s", "dask", "pack",
                  CHECKPOINT_DIR_SETTING)
#: Options that decide what the trials mean (data split, folds, weights, task, Hyperband's and successive
#: halving's plans, the fold trainer, the Keras backend): a different value would mix incomparable trials
#: in one study, so a resume refuses it.
RESUME_REFUSES = ("seed", "cv", "class_weight", "sample_weight", "task", "max_epochs", "factor",
                  "min_resources", "halving_resource", "n_candidates", "trainer", "backend")

#: Why ``--in-process`` cannot train on a backend other than the one this process loaded.
IN_PROCESS_BACKEND = "drop --in-process to train in worker processes, which start on the study's backend"

_VERSIONED_PACKAGES = (
    "hpsearch", "tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "scikeras", "scikit-learn",
    "optuna", "sqlalchemy", "numpy",
)
#: Recorded for studies that train on JAX only: a TensorFlow study resumed where JAX is not installed
#: has nothing of JAX's that changed.
_JAX_PACKAGES = ("jax", "jaxlib")


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a search, carrying the command that resumes it."""

    def __init__(self, resume_command: str) -> None:
        super().__init__(resume_command)
        self.resume_command = resume_command


@dataclass
class RunOptions:
    """What ``hpsearch run`` was asked to do; ``None`` means the documented default."""

    space: str | None = None
    engine: str = "optuna"
    algorithm: str | None = None
    data: str = DEFAULT_DATA
    target: str | None = None
    task: str | None = None
    study: str | None = None
    trials: int | None = None
    timeout_s: float | None = None
    storage: str = DEFAULT_STORAGE
    seed: int | None = None  # None: 0
    pruner: str | None = None  # optuna only; None: the engine's default (median)
    class_weight: str | None = None
    sample_weight: str | None = None  # a CSV column of per-row weights
    max_failures: int | None = None  # None: 5
    stale_after_s: float | None = None  # None: DEFAULT_STALE_AFTER_S
    checkpoint_dir: str | None = None  # None: next to the SQLite file (hpsearch.training.checkpoints)
    resume: bool = False
    dry_run: bool = False
    progress: bool = True
    #: Studies whose completed trials seed this new one (``--warm-start A,B``); see hpsearch.warm_start.
    warm_start: list[str] = field(default_factory=list)
    isolation: Isolation = field(default_factory=lambda: Isolation())
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Isolation:
    """How trials are run: in K supervised worker processes (default) or in this process."""

    workers: int = 1
    recycle_after: int | None = DEFAULT_RECYCLE_AFTER
    memory_limit_mb: float | None = DEFAULT_MAX_WORKER_MEMORY_MB
    in_process: bool = False

    def check(self, engine: Engine) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, but got {self.workers}")
        # Checked before any process starts: each worker imports TensorFlow (about 0.5 GB).
        WORKERS.check(self.workers, "--workers")
        if self.workers > 1 and not engine.parallel_workers:
            raise UsageError(
                f"--workers {self.workers} needs an engine that coordinates several workers (optuna); "
                f"engine '{engine.name}' runs one worker at a time (train on several machines with --dask)"
            )
        if self.workers > 1 and self.in_process:
            raise UsageError("--in-process runs one trial at a time; it cannot be combined with --workers")
        if self.recycle_after is not None and self.recycle_after < 1:
            raise UsageError(f"--recycle-after must be at least 1, but got {self.recycle_after}")
        if self.memory_limit_mb is not None and not (
            math.isfinite(self.memory_limit_mb) and self.memory_limit_mb > 0
        ):
            raise UsageError(f"--max-worker-memory must be a positive number of MiB, but got "
                             f"{self.memory_limit_mb}")


def package_versions(backend: str = "tensorflow") -> dict[str, str]:
    """The versions a study on ``backend`` records (and a resume compares)."""
    versions = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES + (_JAX_PACKAGES if backend == "jax" else ()):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _load_data(
    source: str, target: str | None, task: str, seed: int, class_weight: str | None,
    sample_weight: str | None = None,
) -> Dataset:
    from .data import load_dataset

    return load_dataset(source, target=target, task=task, seed=seed, class_weight=class_weight,
                        sample_weight=sample_weight)


def load_study_dataset(study: StudyRecord) -> Dataset:
    """Reload a study's data from its stored reference, refusing data that changed since."""
    reference = study.dataset
    dataset = _load_data(
        reference["source"], reference.get("target"), reference.get("task", "auto"),
        int(reference.get("seed", 0)), reference.get("class_weight"), reference.get("sample_weight"),
    )
    if dataset.fingerprint != reference.get("fingerprint"):
        was, now = str(reference.get("fingerprint"))[:12], dataset.fingerprint[:12]
        raise StudyMismatchError(
            f"study '{study.name}': the data at {reference['source']} changed since the study was created "
            f"(fingerprint {was} is now {now}); its trials were scored on the old data"
        )
    return dataset


def study_space(study: StudyRecord) -> SearchSpace:
    return space_from_dict(study.space, study.settings.get("space_source", f"study '{study.name}'"))


def _storage_flag(url: str) -> str:
    """``--storage URL`` for a printed command, password masked (set HPSEARCH_STORAGE to run it), quoted
    for a shell."""
    return "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(safe_url(url))}"


def resume_command(study: StudyRecord, url: str) -> str:
    """The command that resumes ``study``, every value shell-quoted (a name may hold spaces or quotes)."""
    return f"hpsearch resume {shlex.quote(study.name)}{_storage_flag(url)}"


def _check_seconds(flag: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive, finite number of seconds, but got {value}")


def _budget(trials: int | None, timeout_s: float | None, max_failures: int,
            given_as: str | None = "--trials") -> Budget:
    """The run's budget; ``given_as`` names where ``trials`` came from (None: an engine's plan, bounded by
    its own limit, such as the grid's)."""
    if trials is not None and trials < 1:
        raise UsageError(f"--trials must be at least 1, but got {trials}")
    if trials is not None and given_as is not None:
        # The budget sizes progress bars, plans and listings: 10**26 trials is a typo, not a plan.
        TRIALS.check(trials, given_as)
    _check_seconds("--timeout", timeout_s)
    if max_failures < 1:
        raise UsageError(f"--max-failures must be at least 1, but got {max_failures}")
    if trials is None and timeout_s is None:
        trials = DEFAULT_TRIALS
    return Budget(trials=trials, timeout_s=timeout_s, max_consecutive_failures=max_failures)


def space_summary(space: SearchSpace) -> str:
    from hpsearch.spaces import SpaceError

    try:
        grid = f"{space.grid_size()} grid candidates"
    except SpaceError:
        grid = "not finite, so not grid-able (give `step` or `grid` to every float)"
    return f"space {space.source}: {len(space.params)} tuned parameters, {grid}"


def run_study(options: RunOptions, out: TextIO = sys.stdout) -> StudyRecord | None:
    """Create and run a study, or with ``options.resume`` continue an existing one of that name.

    Returns None for a dry run (nothing is trained or written).
    """
    if options.study is not None:
        # An empty name used to be replaced by the default silently; a long one is checked once we know
        # whether the study exists (an existing study keeps its name).
        check_study_name(options.study, length=not options.resume)
    space = load_space(options.space or DEFAULT_SPACE)
    engine = get_engine(options.engine)
    # Options only some engines read: each engine refuses the ones it would silently ignore.
    engine_options = {**options.extra, **({"pruner": options.pruner} if options.pruner is not None else {})}
    # Samplers take a 32-bit seed; a bad one used to fail only after the study was created.
    check_seed(options.seed)
    seed = 0 if options.seed is None else options.seed
    max_failures = 5 if options.max_failures is None else options.max_failures
    _check_seconds("--stale-after", options.stale_after_s)
    settings: dict[str, Any] = {
        "algorithm": engine.resolve_algorithm(options.algorithm),
        "seed": seed,
        "trials": options.trials,
        "timeout_s": options.timeout_s,
        "max_failures": max_failures,
        "class_weight": options.class_weight,
        "stale_after_s": options.stale_after_s or DEFAULT_STALE_AFTER_S,
        CHECKPOINT_DIR_SETTING: _absolute(options.checkpoint_dir),
        **engine_options,
    }
    engine.refuse_foreign_options(engine_options)
    options.isolation.check(engine)
    # Before the plan (which may be the whole grid) is taken as the budget, and before any study exists.
    grid_problem = listing_problem(space, settings, engine.name)
    if grid_problem is not None and not options.dry_run:
        raise UsageError(grid_problem)
    # Without --trials, the engine's own plan (a whole grid, one Hyperband iteration) or the default.
    trials = options.trials if options.trials is not None else engine.planned_trials(space, settings)
    budget = _budget(trials, options.timeout_s, max_failures,
                     "--trials" if options.trials is not None else None)
    settings["trials"] = budget.trials
    engine.check(space, settings)
    if options.isolation.in_process and not options.dry_run:
        use_backend_here(settings, why=IN_PROCESS_BACKEND)
    task = options.task or space.task
    url = normalize_url(options.storage)
    sources = parse_sources(options.warm_start)
    if sources:
        engine.check_warm_start(settings)

    if options.dry_run:
        dataset = _load_data(options.data, options.target, task, seed, options.class_weight,
                             options.sample_weight)
        check_objective(space, dataset.task, dataset.n_classes)
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
        if sources:
            # Read only: the plan shows what a real run would copy and skip.
            plan = _warm_start_plan(open_storage(url, create=False), options, space, engine, settings,
                                    dataset)
            for line in plan.lines():
                print(line, file=out)
        return None

    name = options.study if options.study is not None else _default_study_name(
        options.data, engine.name, settings["algorithm"])
    # A new study's workers start importing TensorFlow now, while the data loads and the study is created
    # (a resume starts them once it has read the study's settings).
    with _early_workers(options.isolation, name, url, settings, start=not options.resume) as early:
        # Bad data is refused before the database is even created; a resume reloads data from the study.
        dataset = None
        if not options.resume:
            dataset = _load_data(options.data, options.target, task, seed, options.class_weight,
                                 options.sample_weight)
            check_objective(space, dataset.task, dataset.n_classes)
        storage = open_storage(url)
        existing = _find_study(storage, name)
        if existing is not None:
            if not options.resume:
                raise StudyExistsError(name, display_name(url))
            if sources:
                check_resumed_sources(existing, sources)
            _refuse_changes(
                existing, space=space, engine=engine.name, algorithm=settings["algorithm"], data=options.data,
                target=options.target,
            )
            return _resume(storage, existing, given=_given_options(options), progress=options.progress,
                           isolation=options.isolation, out=out)

        check_study_name(name)  # a new study: its name's length too (run --resume of a missing study)
        if dataset is None:
            dataset = _load_data(options.data, options.target, task, seed, options.class_weight,
                                 options.sample_weight)
            check_objective(space, dataset.task, dataset.n_classes)
        plan = None
        if sources:
            # Planned before the study exists: a bad source leaves nothing behind.
            plan = _warm_start_plan(storage, options, space, engine, settings, dataset, name=name)
            settings[WARM_START_SETTING] = sources
            if options.trials is None and plan.copies:
                # A plan that lists candidates (a whole grid) has fewer left to fit once copies cover some.
                planned = engine.planned_after_copies(space, settings, len(plan.copies))
                budget = _budget(planned, options.timeout_s, max_failures, None)
                settings["trials"] = budget.trials
        backend = study_backend(settings)
        study = storage.create_study(
            name,
            engine=engine.name,
            algorithm=settings["algorithm"],
            objective=space.objective,
            direction=space.direction,
            space=space.to_dict(),
            dataset={**dataset.reference, "fingerprint": dataset.fingerprint, "summary": dataset.summary()},
            settings={**settings, "space_source": space.source,
                      ENVIRONMENT_SETTING: numerical_environment(backend)},
            versions=package_versions(backend),
        )
        print(f"study '{name}' created in {display_name(url)}: {dataset.summary()}", file=out)
        if plan is not None:
            # Copied once, here: a resume continues with them and never copies again.
            copied = storage.copy_trials(study.id, list(plan.copies))
            for line in plan.lines():
                print(line, file=out)
            if copied:
                print(engine.warm_start_note(settings, len(copied)), file=out)
        return _launch(storage, study, space, dataset, engine, budget, [], options.progress,
                       options.isolation, out, early)


def _warm_start_plan(
    storage: Storage, options: RunOptions, space: SearchSpace, engine: Engine, settings: dict[str, Any],
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
    """
    storage = open_storage(normalize_url(storage_url), create=False)
    study = storage.get_study(name)
    _refuse_changes(
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
    """Add workers to a study that others may be running (engines that coordinate workers only)."""
    storage = open_storage(normalize_url(storage_url), create=False)
    study = storage.get_study(name)
    if not get_engine(study.engine).parallel_workers:
        raise UsageError(
            f"study '{name}' uses engine '{study.engine}', which runs one worker at a time; "
            f"continue it with `hpsearch resume {shlex.quote(name)}` once no other process runs it"
        )
    return _resume(storage, study, given={}, progress=progress, isolation=isolation or Isolation(), out=out)


def _absolute(folder: str | None) -> str | None:
    """A folder as stored with the study: workers started elsewhere must find the same one."""
    return None if folder is None else str(Path(folder).expanduser().resolve())


def _given_options(options: RunOptions) -> dict[str, Any]:
    """The options of ``run --resume`` the user typed (None means not given)."""
    given = {
        "trials": options.trials, "timeout_s": options.timeout_s, "seed": options.seed,
        "pruner": options.pruner, "class_weight": options.class_weight,
        "sample_weight": options.sample_weight, "max_failures": options.max_failures,
        "task": options.task, "stale_after_s": options.stale_after_s,
        CHECKPOINT_DIR_SETTING: _absolute(options.checkpoint_dir), **options.extra,
    }
    return {key: value for key, value in given.items() if value is not None}


def _study_option(study: StudyRecord, key: str) -> Any:
    """The value an option has in a study, whether stored in its settings or its data reference."""
    if key in ("sample_weight", "task"):
        return study.dataset.get(key, "auto" if key == "task" else None)
    if key == "class_weight":
        return study.settings.get(key, study.dataset.get(key))
    if key == "seed":
        return study.settings.get("seed", 0)
    return study.settings.get(key)


def _settings_changes(study: StudyRecord, engine: Engine, space: SearchSpace,
                      given: dict[str, Any]) -> dict[str, Any]:
    """Refuse options that would change what the study's trials mean; return those to apply."""
    engine.refuse_foreign_options({key: value for key, value in given.items()
                                   if key == "pruner" or key in ENGINE_OPTIONS})
    current = engine.resolved_options(space, study.settings)
    refused = []
    for key in RESUME_REFUSES:
        if key not in given:
            continue
        was = current[key] if key in current else _study_option(study, key)
        if given[key] != was:
            refused.append(f"--{key.replace('_', '-')} (study: {was}, given: {given[key]})")
    if refused:
        raise StudyMismatchError(
            f"cannot resume study '{study.name}' with a different {'; '.join(refused)}: it decides what "
            "the trials mean, so they would not be comparable; start a new study under another name instead"
        )
    return {key: given[key] for key in RESUME_APPLIES if key in given}


def _resume(
    storage: Storage,
    study: StudyRecord,
    *,
    given: dict[str, Any],
    progress: bool,
    isolation: Isolation,
    out: TextIO,
) -> StudyRecord:
    space = study_space(study)
    engine = get_engine(study.engine)
    isolation.check(engine)
    changes = _settings_changes(study, engine, space, given)
    settings = {**study.settings, **changes}
    # Checked before anything is written: a bad number must not end up in the study's settings.
    # A stored timeout is a per-session limit: a resumed run gets the same again, not what is left.
    budget = _budget(settings.get("trials"), settings.get("timeout_s"), int(settings.get("max_failures", 5)),
                     "--trials" if "trials" in changes else None)
    _check_seconds("--stale-after", settings.get("stale_after_s"))
    engine.check(space, settings)
    grid_problem = listing_problem(space, settings, engine.name)  # a limit lowered since the study began
    if grid_problem is not None:
        raise UsageError(grid_problem)
    if isolation.in_process:
        use_backend_here(settings, why=IN_PROCESS_BACKEND)
    # The workers start importing TensorFlow now, while the data reloads and the study is reconciled.
    with _early_workers(isolation, study.name, storage.url, settings) as early:
        dataset = load_study_dataset(study)
        if changes:
            study = storage.update_study_settings(study.id, changes)
            shown = ", ".join(f"{key} {value}" for key, value in changes.items())
            print(f"study '{study.name}' settings updated: {shown}", file=out)

        backend = study_backend(study.settings)
        for line in changes_since(study.versions, study.settings.get(ENVIRONMENT_SETTING),
                                  package_versions(backend), numerical_environment(backend)):
            print(f"warning: study '{study.name}' was created with {line}: the trials from here on may "
                  "differ from those an uninterrupted run would have trained", file=sys.stderr)
        interrupted = fail_abandoned_trials(storage, study)
        probe = _context(storage, study, space, dataset, budget, [])
        if interrupted:
            engine.recover(probe, interrupted)
            numbers = ", ".join(f"#{trial.number}" for trial in interrupted)
            print(f"marked {len(interrupted)} interrupted trial(s) as FAILED: {numbers}", file=out)
        retries = trials_to_retry(storage, study)
        checkpoints = study_checkpoints(storage.url, study, study.settings)
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
        return _launch(storage, study, space, dataset, engine, budget, retries, progress, isolation, out,
                       early)


def _early_workers(isolation: Isolation, name: str, url: str, settings: dict[str, Any], *,
                   start: bool = True) -> EarlyWorkers:
    """The run's first workers, started now so their imports overlap its set-up (none in-process)."""
    from .executors.supervisor import EarlyWorkers, WorkerLaunch

    if isolation.in_process or not start:
        return EarlyWorkers(None)
    return EarlyWorkers(WorkerLaunch(name, normalize_url(url), settings, isolation.workers,
                                     isolation.recycle_after, isolation.memory_limit_mb))


def _launch(
    storage: Storage,
    study: StudyRecord,
    space: SearchSpace,
    dataset: Dataset,
    engine: Engine,
    budget: Budget,
    retries: list,
    progress: bool,
    isolation: Isolation,
    out: TextIO,
    early: EarlyWorkers,
) -> StudyRecord:
    """Train in supervised worker processes (the first are ``early``'s), or here with ``--in-process``."""
    engine.prepare(_context(storage, study, space, dataset, budget, []))
    if isolation.in_process:
        return _execute(storage, study, space, dataset, engine, budget, retries, progress, out)
    from .executors.supervisor import Supervisor

    supervisor = Supervisor(
        storage, study, engine, budget, workers=isolation.workers, recycle_after=isolation.recycle_after,
        memory_limit_mb=isolation.memory_limit_mb, progress=progress, retries_pending=bool(retries),
        standbys=early.take(),
        resume_command=resume_command(study, storage.url),
    )
    started = time.monotonic()
    try:
        supervisor.run()
    except KeyboardInterrupt:
        raise SearchInterrupted(resume_command(study, storage.url)) from None
    finally:
        _touch(storage, study)
    _print_summary(storage, study, space, time.monotonic() - started, out, budget, engine)
    return storage.get_study(study.name)


def work_on_study(
    name: str,
    storage_url: str,
    *,
    session_trials: int | None,
    memory_limit_mb: float | None,
    timeout_s: float | None,
    retries: bool,
) -> None:
    """The body of a worker process: train the study's trials until told to stop (no output)."""
    storage = open_storage(storage_url, create=False)
    study = storage.get_study(name)
    settings = study.settings
    budget = _budget(settings.get("trials"), timeout_s, int(settings.get("max_failures", 5)), None)
    budget.session_trials = session_trials
    budget.memory_limit_mb = memory_limit_mb
    engine = get_engine(study.engine)
    ctx = _context(storage, study, study_space(study), load_study_dataset(study), budget,
                   trials_to_retry(storage, study) if retries else [])
    try:
        engine.run(ctx)
    finally:
        _fail_own_running_trials(storage, study)
    ctx.tracker.raise_if_search_failed()


def _context(
    storage: Storage,
    study: StudyRecord,
    space: SearchSpace,
    dataset: Dataset,
    budget: Budget,
    retries: list,
) -> RunContext:
    recorder = TrialRecorder(storage, study)
    tracker = BudgetTracker(storage, study, budget)
    recorder.on_finish(tracker.trial_finished)
    return RunContext(
        storage=storage, study=study, space=space, dataset=dataset, recorder=recorder, tracker=tracker,
        settings=study.settings, retries=retries,
    )


def _execute(
    storage: Storage,
    study: StudyRecord,
    space: SearchSpace,
    dataset: Dataset,
    engine: Engine,
    budget: Budget,
    retries: list,
    progress: bool,
    out: TextIO,
) -> StudyRecord:
    from .progress import ProgressBar

    ctx = _context(storage, study, space, dataset, budget, retries)
    bar = ProgressBar(
        total=budget.trials, initial=ctx.tracker.spent(), objective=study.objective,
        direction=study.direction, best=_best_value(storage, study), enabled=progress,
    )
    ctx.recorder.on_finish(bar.trial_finished)
    started = time.monotonic()
    try:
        engine.run(ctx)
    except KeyboardInterrupt:
        raise SearchInterrupted(resume_command(study, storage.url)) from None
    except StorageTroubleError as trouble:
        raise StorageTroubleError(f"{trouble}; continue with: {resume_command(study, storage.url)}") from None
    finally:
        bar.close()
        _fail_own_running_trials(storage, study)
        _touch(storage, study)
    ctx.tracker.raise_if_search_failed()
    _print_summary(storage, study, space, time.monotonic() - started, out, budget, engine)
    return storage.get_study(study.name)


def _touch(storage: Storage, study: StudyRecord) -> None:
    """Mark the study as updated; best effort, so a failing database does not hide why the run ended."""
    from hpsearch.storage import StorageError

    try:
        storage.touch_study(study.id)
    except StorageError:
        pass


def _fail_own_running_trials(storage: Storage, study: StudyRecord) -> None:
    """Safety net: a trial this process started must not stay RUNNING once the run is over."""
    from hpsearch.storage import StorageError

    from .recovery import interrupt_trial

    me = current_worker()
    try:
        for trial in storage.running_trials(study.id):
            if trial.worker == me:
                interrupt_trial(storage, trial, "the run stopped")
    except StorageError:
        pass  # the database is failing: resume fails the trial once this process is gone


def _best_value(storage: Storage, study: StudyRecord) -> float | None:
    best = storage.best_trials(study.id, 1)
    return best[0].value if best else None


def _print_summary(
    storage: Storage, study: StudyRecord, space: SearchSpace, seconds: float, out: TextIO, budget: Budget,
    engine: Engine,
) -> None:
    counts = storage.count_trials(study.id)
    states = ", ".join(f"{counts[state]} {state.value.lower()}" for state in TrialState if counts[state])
    interrupted = storage.count_interrupted(study.id) if counts[TrialState.FAILED] else 0
    # An interrupted attempt is FAILED in the store, but not for its configuration: it is retried.
    states += f", {interrupted} of them interrupted" if interrupted else ""
    copied = len(storage.copied_trials(study.id)) if study.settings.get(WARM_START_SETTING) else 0
    states += f"; {copied} of them copied by --warm-start" if copied else ""
    print(f"study '{study.name}': {sum(counts.values())} trials ({states}) after {seconds:.1f} s", file=out)
    spent, running = storage.budget_usage(study.id)
    if budget.trials is not None and spent + running < budget.trials and budget.time_left() != 0.0:
        # Neither the budget (trials still running in another command count) nor the clock stopped it:
        # the engine ran out of proposals. Say so, or the progress line's "[5/6]" reads as trials lost.
        why = engine.short_plan_reason(space, study.settings, spent)
        print(f"the {study.engine} {study.algorithm} search ended after {spent} of its {budget.trials} "
              f"trials: {why}", file=out)
    best = storage.best_trials(study.id, 1)
    if best:
        origin = f" (copied from study {best[0].copied_from})" if best[0].copied else ""
        print(f"best trial #{best[0].number}: {study.objective} = {best[0].value:.6g}{origin}", file=out)
        print(f"show it with: hpsearch best {shlex.quote(study.name)}{_storage_flag(storage.url)}", file=out)


def _find_study(storage: Storage, name: str) -> StudyRecord | None:
    from hpsearch.storage import StudyNotFoundError

    try:
        return storage.get_study(name)
    except StudyNotFoundError:
        return None


def _default_study_name(data: str, engine: str, algorithm: str) -> str:
    from pathlib import Path

    stem = Path(data).stem or data
    return f"{stem}-{engine}-{algorithm}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def _refuse_changes(
    study: StudyRecord,
    *,
    space: SearchSpace | None,
    engine: str | None,
    algorithm: str | None,
    data: str | None,
    target: str | None,
) -> None:
    """Resuming with other inputs would mix incomparable trials: name what changed and refuse."""
    changed: list[str] = []
    if engine is not None and engine != study.engine:
        changed.append(f"engine (study: {study.engine}, given: {engine})")
    if algorithm is not None and algorithm != study.algorithm:
        changed.append(f"algorithm (study: {study.algorithm}, given: {algorithm})")
    if space is not None and space.to_dict() != study.space:
        changed.append(f"search space ({_space_difference(study.space, space.to_dict())})")
    if data is not None and not _same_data_source(data, study.dataset):
        changed.append(f"data (study: {study.dataset.get('source')}, given: {data})")
    if target is not None and target != study.dataset.get("target"):
        changed.append(f"target (study: {study.dataset.get('target')}, given: {target})")
    if changed:
        raise StudyMismatchError(
            f"cannot resume study '{study.name}' with a different {'; '.join(changed)}; "
            "start a new study under another name instead"
        )


def _same_data_source(given: str, reference: dict) -> bool:
    from pathlib import Path

    source = str(reference.get("source"))
    if reference.get("kind") == "builtin" or given == source:  # a builtin or bundled dataset's name
        return given == source
    return Path(given).expanduser().resolve() == Path(source)


def _space_difference(old: dict, new: dict) -> str:
    differences = []
    for section in ("task", "objective"):
        if old.get(section) != new.get(section):
            differences.append(f"{section} {old.get(section)!r} -> {new.get(section)!r}")
    for section in ("params", "fixed"):
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                differences.append(f"{section[:-1] if section == 'params' else section} '{key}'")
    return ", ".join(differences) or "changed"
