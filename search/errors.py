"""The root of every error hpsearch reports to a user, and the errors of its run-time layer.

Every error meant for a user derives from :class:`HpsearchError` and carries ``exit_code``: 2 for bad
usage or bad input (the user must change what they typed or the file they gave; these also derive from
:class:`InputError`, a ``ValueError``), 1 for a failure at run time. The CLI prints ``str(error)`` as one
sentence and exits with that code; ``--debug`` adds the traceback.

This module imports nothing of the project, so ``hpsearch.storage`` and ``hpsearch.spaces`` derive their
errors from it without depending on anything else of ``hpsearch``.
"""

from __future__ import annotations


class HpsearchError(Exception):
    """Base of the errors the CLI reports as one sentence (``str(error)``) and exits with ``exit_code``.

    Raise a subclass with the sentence as its only argument; the class says which exit code it gets.
    """

    exit_code: int = 1


class InputError(HpsearchError, ValueError):
    """Bad input: the user must change what they typed or the file they gave (exit code 2).

    A ``ValueError`` too, as Python code expects of bad input.
    """

    exit_code = 2


class UsageError(InputError):
    """The command line asks for something that cannot be done as stated."""


class DataError(InputError):
    """The data source is missing, malformed or unusable for the task; names file and column."""


class StudyMismatchError(InputError):
    """A resume was asked with a space, engine or data different from what the study was created with."""


class SearchFailedError(HpsearchError):
    """The search could not go on (for example every trial failed)."""


class NoResultError(HpsearchError):
    """A query found nothing to report (for example ``best`` on a study with no completed trial)."""


class StorageTroubleError(HpsearchError):
    """The database failed while a trial ran (a lock timeout, a lost connection, a full disk).

    Not the configuration's fault: the trial is not counted as failed, the worker stops, and the trial's
    configuration is retried through the resume path.
    """

    #: How a worker process tells its supervisor that this, not a search failure, stopped it.
    worker_exit_code = 75


class FitProcessLostError(HpsearchError):
    """A process fitting part of a trial died (a signal, the out-of-memory killer, a crash) while the run
    goes on: the trial is marked interrupted with the cause and the driver has it fitted again with fresh
    processes, keeping what was finished (scikit-learn: the folds). Not counted toward ``--max-failures``;
    a configuration cut short too often is given up (``retry_policy.MAX_ATTEMPTS``)."""


class ClusterLostError(HpsearchError):
    """Where trials execute went away (the Dask scheduler of ``--dask``): not the configuration's fault.

    The trials in flight are marked interrupted (retried on resume, not counted as failed) and the run
    stops with one message.
    """
