"""The scikit-learn engine's own options, read and checked: ``--cv``, ``--jobs``, ``--trainer``, ``--dask``.

Each reader returns the option's value with its default filled in, or raises UsageError saying what must
hold; the engine checks them all before a run (``SklearnEngine.check``), and other commands read them
(``hpsearch compare``, the service, ``--warm-start``) to describe a study as it was run.
"""

from __future__ import annotations

import os

from ...errors import UsageError
from ...settings import StudySettings

DEFAULT_CV = 3
DEFAULT_JOBS = 1
#: ``--trainer``: what fits a fold. ``scikeras``: SciKeras' own fit, as GridSearchCV runs it (its scores to
#: the bit); ``hpsearch``: the same model and training without Keras' fit machinery, batches in hpsearch's
#: seeded order (scores within that order's noise; see hpsearch.training.direct_fit); ``population``: the
#: hpsearch training with candidates x folds stacked into populations (hpsearch.training.fold_population).
TRAINERS = ("scikeras", "hpsearch", "population")
DEFAULT_TRAINER = "scikeras"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cv_folds(settings: StudySettings) -> int:
    """``--cv``: the number of folds (``DEFAULT_CV`` when not given); UsageError below 2 or not an integer."""
    folds = settings.cv
    folds = DEFAULT_CV if folds is None else folds
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UsageError(f"--cv must be an integer of at least 2 (folds), but got {folds}")
    return folds


def cv_jobs(settings: StudySettings) -> int:
    """``--jobs``: fold fits at once, each in its own process with its share of the cores.

    More processes than cores would only oversubscribe them (each one a TensorFlow runtime), so that is
    refused rather than silently slowed down (UsageError, as for a value below 1).
    """
    jobs = settings.jobs
    jobs = DEFAULT_JOBS if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs must be at least 1, but got {jobs}")
    cores = available_cores()
    if jobs > cores:
        raise UsageError(
            f"--jobs {jobs} asks for more parallel fits than the {cores} CPU core(s) this process may use; "
            f"each parallel fold is a TensorFlow process, and more of them than cores only oversubscribe "
            f"the cores: use --jobs {cores} or less"
        )
    return jobs


def fold_trainer(settings: StudySettings) -> str:
    """``--trainer``: one of ``TRAINERS`` (``DEFAULT_TRAINER`` when not given); UsageError for another."""
    trainer = settings.trainer
    trainer = DEFAULT_TRAINER if trainer is None else trainer
    if trainer not in TRAINERS:
        raise UsageError(f"--trainer must be one of {', '.join(TRAINERS)}, but got {trainer!r}")
    return trainer


def cv_cluster(settings: StudySettings) -> str | None:
    """``--dask``: the scheduler that fold fits are sent to as tasks (None: fit them on this machine).

    Raises UsageError for a malformed address, or for ``--jobs`` above 1 with a cluster.
    """
    from ...executors.cluster import check_address, dask_address

    check_address(settings.dask)
    address = dask_address(settings)
    jobs = settings.jobs
    if address is not None and jobs is not None and jobs != 1:
        raise UsageError(
            f"--jobs {jobs} and --dask cannot be combined: --jobs fits folds in processes on this machine, "
            "--dask sends them to the Dask cluster, whose workers decide how many run at once (give --jobs 1 "
            "to resume a --jobs study on a cluster)"
        )
    return address
