"""The settings a study is created with, and how a resume may change them.

A new study records its settings (algorithm, seed, budget, engine options, ...; built here, once, as a
``hpsearch.settings.StudySettings``) and the package versions it trained with; a resume compares what the
user typed with them: some options may change from then on (``RESUME_APPLIES``), others decide what the
trials mean and are refused (``RESUME_REFUSES``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.storage import StudyRecord

from .engines.base import ENGINE_OPTIONS, Engine
from .errors import StudyMismatchError, UsageError
from .limits import TRIALS, check_seconds, check_seed
from .settings import DEFAULT_MAX_FAILURES, StudySettings
from .training.checkpoints import CHECKPOINT_DIR_SETTING
from .training.context import Budget
from .training.runner import DEFAULT_STALE_AFTER_S

if TYPE_CHECKING:
    from hpsearch.spaces import SearchSpace

    from .study_options import RunOptions

#: The trial budget when neither ``--trials``, ``--timeout`` nor the engine's own plan gives one.
DEFAULT_TRIALS = 10

#: Options a resume may change: recorded in the study's settings and used from then on.
RESUME_APPLIES = ("trials", "timeout_s", "max_failures", "jobs", "pruner", "stale_after_s", "dask", "pack",
                  "population", CHECKPOINT_DIR_SETTING)
#: Options that decide what the trials mean (data split, folds, weights, task, Hyperband's and successive
#: halving's plans, the fold trainer, the Keras backend): a different value would mix incomparable trials
#: in one study, so a resume refuses it.
RESUME_REFUSES = ("seed", "cv", "class_weight", "sample_weight", "task", "max_epochs", "factor",
                  "min_resources", "halving_resource", "n_candidates", "trainer", "backend")

_VERSIONED_PACKAGES = (
    "hpsearch", "tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "scikeras", "scikit-learn",
    "optuna", "sqlalchemy", "numpy",
)
#: Recorded for studies that train on JAX only: a TensorFlow study resumed where JAX is not installed
#: has nothing of JAX's that changed.
_JAX_PACKAGES = ("jax", "jaxlib")


def package_versions(backend: str = "tensorflow") -> dict[str, str]:
    """The versions a study on ``backend`` records (and a resume compares); packages not installed are
    left out."""
    versions = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES + (_JAX_PACKAGES if backend == "jax" else ()):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_budget(trials: int | None, timeout_s: float | None, max_failures: int,
               given_as: str | None = "--trials") -> Budget:
    """The run's budget; ``given_as`` names where ``trials`` came from (None: an engine's plan, bounded by
    its own limit, such as the grid's). Without trials or a timeout, ``DEFAULT_TRIALS``.

    Raises:
        UsageError: a trial count below 1 or (when given) over the ``TRIALS`` limit, a timeout that is not
            a positive number of seconds, or ``max_failures`` below 1.
    """
    if trials is not None and trials < 1:
        raise UsageError(f"--trials must be at least 1, but got {trials}")
    if trials is not None and given_as is not None:
        # The budget sizes progress bars, plans and listings: 10**26 trials is a typo, not a plan.
        TRIALS.check(trials, given_as)
    check_seconds("--timeout", timeout_s)
    if max_failures < 1:
        raise UsageError(f"--max-failures must be at least 1, but got {max_failures}")
    if trials is None and timeout_s is None:
        trials = DEFAULT_TRIALS
    return Budget(trials=trials, timeout_s=timeout_s, max_consecutive_failures=max_failures)


def stored_budget(settings: StudySettings | Mapping[str, Any], timeout_s: float | None,
                  given_as: str | None = None) -> Budget:
    """The budget recorded in a study's ``settings``, with ``timeout_s`` for this session (a stored timeout
    is a per-session limit); ``given_as`` as for :func:`run_budget`.

    Args:
        settings: the study's settings (a stored settings object is read as ``StudySettings``).
        timeout_s: this session's wall-clock limit.
        given_as: as for :func:`run_budget`.

    Returns:
        The budget.

    Raises:
        UsageError: as :func:`run_budget`.
    """
    settings = StudySettings.from_record(settings)
    return run_budget(settings.trials, timeout_s, int(settings.max_failures), given_as)


def new_study_settings(options: RunOptions, engine: Engine) -> StudySettings:
    """The settings a new study records, from the options of ``hpsearch run`` (defaults filled in): the
    one place a study's settings are built from options.

    ``trials`` is the number given, if any: the run's budget replaces it once the engine's plan is known.

    Raises:
        UsageError: a bad seed, ``--stale-after`` or algorithm, or an option ``engine`` does not read.
    """
    # Options only some engines read: each engine refuses the ones it would silently ignore.
    engine_options = {**options.extra, **({"pruner": options.pruner} if options.pruner is not None else {})}
    # Samplers take a 32-bit seed; a bad one used to fail only after the study was created.
    check_seed(options.seed)
    check_seconds("--stale-after", options.stale_after_s)
    algorithm = engine.resolve_algorithm(options.algorithm)
    settings: dict[str, Any] = {
        "algorithm": algorithm,
        "seed": 0 if options.seed is None else options.seed,
        "trials": options.trials,
        "timeout_s": options.timeout_s,
        "max_failures": DEFAULT_MAX_FAILURES if options.max_failures is None else options.max_failures,
        "class_weight": options.class_weight,
        "stale_after_s": options.stale_after_s or DEFAULT_STALE_AFTER_S,
        CHECKPOINT_DIR_SETTING: _absolute(options.checkpoint_dir),
        **engine_options,
        # After what was given, so a study's record keeps the key order it had before defaults were recorded.
        **{key: value for key, value in engine.default_options(algorithm).items()
           if key not in engine_options},
    }
    engine.refuse_foreign_options(engine_options)
    return StudySettings.from_record(settings)


def new_study_budget(options: RunOptions, space: SearchSpace, engine: Engine,
                     settings: StudySettings) -> Budget:
    """A new study's budget: ``--trials`` when given, else the engine's own plan (a whole grid, one
    Hyperband iteration) or the default.

    Raises:
        UsageError: as :func:`run_budget`.
    """
    trials = options.trials if options.trials is not None else engine.planned_trials(space, settings)
    return run_budget(trials, options.timeout_s, settings.max_failures,
                      "--trials" if options.trials is not None else None)


def given_options(options: RunOptions) -> dict[str, Any]:
    """The options of ``run --resume`` the user typed (None means not given), as settings keys."""
    given = {
        "trials": options.trials, "timeout_s": options.timeout_s, "seed": options.seed,
        "pruner": options.pruner, "class_weight": options.class_weight,
        "sample_weight": options.sample_weight, "max_failures": options.max_failures,
        "task": options.task, "stale_after_s": options.stale_after_s,
        CHECKPOINT_DIR_SETTING: _absolute(options.checkpoint_dir), **options.extra,
    }
    return {key: value for key, value in given.items() if value is not None}


def settings_changes(study: StudyRecord, engine: Engine, space: SearchSpace,
                     given: dict[str, Any]) -> dict[str, Any]:
    """Refuse options that would change what the study's trials mean; return those to apply.

    ``given`` holds the options the user typed for the resume (settings keys).

    Raises:
        UsageError: an option ``engine`` does not read.
        StudyMismatchError: naming every ``RESUME_REFUSES`` option whose value differs from the study's.
    """
    engine.refuse_foreign_options({key: value for key, value in given.items()
                                   if key == "pruner" or key in ENGINE_OPTIONS})
    current = engine.resolved_options(space, StudySettings.from_record(study.settings))
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


def _absolute(folder: str | None) -> str | None:
    """A folder as stored with the study: workers started elsewhere must find the same one."""
    return None if folder is None else str(Path(folder).expanduser().resolve())


def _study_option(study: StudyRecord, key: str) -> Any:
    """The value an option has in a study, whether stored in its settings or its data reference."""
    if key in ("sample_weight", "task"):
        return study.dataset.get(key, "auto" if key == "task" else None)
    settings = StudySettings.from_record(study.settings)
    if key == "class_weight":
        # Older studies recorded it with the data reference only.
        return settings.class_weight if settings.recorded("class_weight") else study.dataset.get(key)
    return getattr(settings, key)
