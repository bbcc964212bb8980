"""The Python API: ``hpsearch.run``, ``hpsearch.load_study``, ``hpsearch.list_studies``.

The command line is a thin layer over these functions: ``hpsearch run`` builds its options with
:func:`run_options` and runs them through :func:`hpsearch.study.run_study`, exactly as :func:`run` does, so
a study made in a notebook is the same rows in the same store as one made on the shell, and each resumes
the other. Errors are the one-sentence ``ValueError`` subclasses the CLI prints (``UsageError``,
``SpaceError``, ``DataError``, ...), never ``SystemExit``.

TensorFlow is imported only once a search or a retrain starts: listing and loading studies stay light.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from . import interrupts
from .errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    from hpsearch.spaces import SearchSpace

    from .study_handle import Study
    from .study_options import RunOptions

#: Where studies are kept unless ``storage`` (or ``--storage``) says otherwise.
DEFAULT_STORAGE = "sqlite:///hpsearch.db"
#: How a space given as a mapping is named in its errors and in the study's settings.
DICT_SPACE_SOURCE = "<space dict>"


def default_storage() -> str:
    """The store used when none is named: ``$HPSEARCH_STORAGE``, else ``sqlite:///hpsearch.db``.

    Returns:
        A SQLAlchemy URL or SQLite file path.
    """
    return os.environ.get("HPSEARCH_STORAGE") or DEFAULT_STORAGE


def run_options(
    space: str | os.PathLike[str] | Mapping[str, Any] | SearchSpace | None = None,
    data: Any = "digits",
    *,
    target: str | None = None,
    engine: str = "optuna",
    algorithm: str | None = None,
    task: str | None = None,
    study: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    pruner: str | None = None,
    class_weight: str | None = None,
    sample_weight: str | None = None,
    drop: Sequence[str] | str | None = None,
    validation: Any = None,
    test: Any = None,
    max_failures: int | None = None,
    stale_after: float | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    warm_start: Sequence[str] | str | None = None,
    workers: int = 1,
    recycle_after: int | None = None,
    max_worker_memory: float | None = None,
    in_process: bool = False,
    model: Callable[..., Any] | str | None = None,
    train: Callable[..., Any] | str | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> RunOptions:
    """The options of one search, as both :func:`run` and ``hpsearch run`` hand them to ``run_study``.

    Args: as :func:`run`; ``engine_options`` holds the engine-specific ones (``cv``, ``jobs``, ``pack``,
        ...; ``None`` values are left out).

    Returns:
        The ``RunOptions`` of the search.

    Raises:
        UsageError: an engine option no engine knows, a ``drop`` that is not column names, or
            ``validation``/``test`` given with file data.
        SpaceError: a space mapping that is not a valid space.
    """
    from .engines.base import ENGINE_OPTIONS
    from .engines.registry import get_engine
    from .study_options import DEFAULT_MAX_WORKER_MEMORY_MB, DEFAULT_RECYCLE_AFTER, Isolation, RunOptions

    extra = {key: value for key, value in (engine_options or {}).items() if value is not None}
    unknown = sorted(set(extra) - set(ENGINE_OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; the engine options are "
                         f"{', '.join(ENGINE_OPTIONS)}")
    if "dask" not in extra and os.environ.get("HPSEARCH_DASK") and "dask" in get_engine(engine).options:
        # The environment's cluster serves the engines that send work to one; others ignore it.
        extra["dask"] = os.environ["HPSEARCH_DASK"]
    options = RunOptions(
        space=_space(space, model, train), engine=engine, algorithm=algorithm,
        data=_data(data, target, validation, test), target=target, task=task, study=study, trials=trials,
        timeout_s=timeout, storage=os.fspath(storage) if storage is not None else default_storage(),
        seed=seed, pruner=pruner, class_weight=class_weight, sample_weight=sample_weight,
        max_failures=max_failures, stale_after_s=stale_after, drop=_names(drop, "drop"),
        checkpoint_dir=os.fspath(checkpoint_dir) if checkpoint_dir is not None else None,
        resume=resume, dry_run=dry_run, progress=progress,
        # Checked (empty names refused) where the CLI's --warm-start is: hpsearch.warm_start.parse_sources.
        warm_start=[warm_start] if isinstance(warm_start, str) else [*(warm_start or [])],
        isolation=Isolation(
            workers=workers,
            recycle_after=DEFAULT_RECYCLE_AFTER if recycle_after is None else recycle_after,
            memory_limit_mb=DEFAULT_MAX_WORKER_MEMORY_MB if max_worker_memory is None else max_worker_memory,
            in_process=in_process,
        ),
        # Engine-specific settings, stored with the study; each engine reads the ones it knows.
        extra=extra,
    )
    return options


def _space(space: Any, model: Callable[..., Any] | str | None = None,
           train: Callable[..., Any] | str | None = None) -> Any:
    """A preset name or file path as text (``run_study`` loads it), a mapping as a checked space; with
    ``model`` or ``train``, the space with that function named in it (as ``model:``/``train:`` in YAML)."""
    from hpsearch.spaces import SearchSpace, load_space, space_from_dict

    if model is not None or train is not None:
        from hpsearch.spaces import function_reference

        if isinstance(space, Mapping):
            plain, source = dict(space), DICT_SPACE_SOURCE
        else:
            loaded = space if isinstance(space, SearchSpace) else load_space(_space(space) or "default")
            plain, source = loaded.to_dict(), loaded.source
        for key, function in (("model", model), ("train", train)):
            if function is not None:
                # A notebook's function is registered under its reference; workers import others by name.
                plain[key] = function if isinstance(function, str) else function_reference(function)
        return space_from_dict(plain, source)
    if space is None or isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return space_from_dict(space, DICT_SPACE_SOURCE)
    if isinstance(space, str | os.PathLike):
        return os.fspath(space)
    raise UsageError(f"space must be a preset name, a space file path, a dict or a SearchSpace, but got "
                     f"{type(space).__name__}")


def _data(data: Any, target: str | None, validation: Any, test: Any) -> Any:
    """A bundled name or file path as text; a DataFrame or ``(X, y)`` arrays as in-memory data."""
    if isinstance(data, str | os.PathLike):
        if validation is not None or test is not None:
            raise UsageError("validation= and test= hold out rows of in-memory data (a DataFrame or arrays); "
                             "a file or bundled dataset is split by hpsearch, so leave them out")
        return os.fspath(data)
    from .data import in_memory_data

    return in_memory_data(data, target=target, validation=validation, test=test)


def _names(value: Sequence[str] | str | None, option: str) -> list[str]:
    """Column names given as a list, or as one comma-separated string as on the command line."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise UsageError(f"{option}= takes column names (a list, or one string separated by commas), but got "
                         f"{value!r}")
    return [item.strip() for item in items]


@contextmanager
def api_session(progress: bool) -> Iterator[TextIO]:
    """Where a search started from Python writes, and how it is interrupted.

    Yields ``sys.stdout`` (or, with ``progress=False``, a stream nobody reads). In the main thread,
    Ctrl-C (a notebook's interrupt) and SIGTERM are handled as on the shell: the trial in flight is
    recorded as interrupted and ``KeyboardInterrupt`` (``SearchInterrupted``, which carries the resume
    command) reaches the caller with the study resumable. The previous signal handlers come back after.
    """
    # The worker processes read it when they import TensorFlow: no C++ start-up chatter in the output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .runtime import quiet_tensorflow

    quiet_tensorflow.install()  # the lines TensorFlow prints before that variable is read (in_process)
    out: TextIO = sys.stdout if progress else io.StringIO()
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be set from the main thread; there the caller's own handling applies.
        yield out
        return
    with interrupts.handled():
        yield out


def run(
    space: str | os.PathLike[str] | Mapping[str, Any] | SearchSpace = "default",
    data: Any = "digits",
    *,
    target: str | None = None,
    engine: str = "optuna",
    algorithm: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | os.PathLike[str] | None = None,
    study: str | None = None,
    workers: int = 1,
    seed: int | None = None,
    progress: bool = True,
    drop: Sequence[str] | str | None = None,
    validation: Any = None,
    test: Any = None,
    task: str | None = None,
    pruner: str | None = None,
    class_weight: str | None = None,
    sample_weight: str | None = None,
    max_failures: int | None = None,
    stale_after: float | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    warm_start: Sequence[str] | str | None = None,
    in_process: bool = False,
    recycle_after: int | None = None,
    max_worker_memory: float | None = None,
    model: Callable[..., Any] | str | None = None,
    train: Callable[..., Any] | str | None = None,
    **engine_options: Any,
) -> Study:
    """Run a search, as ``hpsearch run`` does, and return its study.

    The study is the one the CLI makes (same database rows, same defaults): ``hpsearch best``, ``resume``
    and ``retrain`` work on it from the shell, and :func:`load_study` loads a CLI-made study.

    Args:
        space: a bundled preset name (``"default"``), a YAML/JSON space file, a dict of the file's shape,
            or a ``hpsearch.spaces.SearchSpace``.
        data: a bundled dataset name (``digits``, ``iris``, ...), a CSV or NPZ path, a pandas DataFrame
            (with ``target``), or NumPy arrays ``(X, y)``.
        target: the target column of a CSV file or DataFrame.
        engine: ``optuna`` (default), ``keras-tuner`` or ``sklearn``.
        algorithm: the engine's algorithm (optuna: ``tpe``, ``random``, ``grid``, ``cmaes``; keras-tuner:
            ``random``, ``hyperband``, ``bayesian``; sklearn: ``grid``, ``random``, ``halving-grid``,
            ``halving-random``); ``None``: the engine's default.
        trials: trial budget (default 10 without ``timeout``; sklearn grid: the whole grid).
        timeout: stop starting trials after this many seconds.
        storage: SQLAlchemy URL or SQLite file path (default ``$HPSEARCH_STORAGE``, else
            ``sqlite:///hpsearch.db``).
        study: the study's name (default ``DATA-ENGINE-ALGORITHM-TIME``).
        workers: worker processes training at once (more than 1: optuna only).
        seed: seed of the data split, sampler and weights (default 0).
        progress: show a progress bar (terminal or notebook) and the summary; ``False``: silent.
        drop: columns of a CSV or DataFrame to leave out (names, or one comma-separated string).
        validation: held-out validation rows of in-memory data (same form as ``data``).
        test: held-out test rows of in-memory data (same form as ``data``).
        task: ``auto``, ``binary``, ``multiclass`` or ``regression`` instead of the space's.
        pruner: optuna's pruner (``median``, ``hyperband``, ``none``).
        class_weight: ``"balanced"`` to weight classes inversely to their frequency.
        sample_weight: a column of per-row training weights.
        max_failures: stop after this many consecutive failed trials (default 5).
        stale_after: seconds without a heartbeat after which a trial is failed and retried (default 60).
        checkpoint_dir: where long trials keep checkpoints (default next to the SQLite file).
        resume: continue the study if it already exists instead of refusing its name.
        warm_start: studies whose completed trials seed this new one.
        in_process: train here instead of in supervised worker processes (for debugging).
        recycle_after: replace a worker after this many trials (default 50).
        max_worker_memory: replace a worker once its resident memory passes this many MiB (default 4096).
        model: your model function ``build(params, info) -> keras.Model`` (or its ``"module:function"``
            name), as ``model:`` in a space file.
        train: your training function ``fit(params, report) -> float`` (or its name), as ``train:``.
        **engine_options: engine-specific options, as on the command line: ``cv``, ``jobs``, ``pack``,
            ``trainer``, ``backend``, ``dask``, ``max_epochs``, ``factor``, ``halving_resource``,
            ``min_resources``, ``n_candidates``, ``population`` (``"auto"``, ``"off"`` or a count: proposals
            trained as one stacked model, see ``hpsearch.training.population``).

    Returns:
        The study, as stored once the run ended.

    Raises:
        UsageError, SpaceError, DataError: options, space or data that cannot be run (``ValueError``
            subclasses, with the sentence the CLI prints), before any study is created.
        StudyExistsError: a study of that name exists and ``resume`` is not set.
        KeyboardInterrupt: Ctrl-C (``SearchInterrupted``); completed trials are saved and
            ``load_study(name).resume()`` continues.
        SearchFailedError: the search could not make progress (every trial failed).
    """
    from .study import run_study
    from .study_handle import Study

    options = run_options(
        space, data, target=target, engine=engine, algorithm=algorithm, task=task, study=study,
        trials=trials, timeout=timeout, storage=storage, seed=seed, pruner=pruner, class_weight=class_weight,
        sample_weight=sample_weight, drop=drop, validation=validation, test=test, max_failures=max_failures,
        stale_after=stale_after, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
        warm_start=warm_start, workers=workers, recycle_after=recycle_after,
        max_worker_memory=max_worker_memory, in_process=in_process, model=model, train=train,
        engine_options=engine_options,
    )
    with api_session(progress) as out:
        record = run_study(options, out=out)
    assert record is not None  # only a dry run returns None
    return Study(record.name, options.storage, progress=progress)


def load_study(name: str, storage: str | os.PathLike[str] | None = None) -> Study:
    """An existing study, however it was made (``hpsearch run``, :func:`run`, the server).

    Args:
        name: the study's name.
        storage: SQLAlchemy URL or SQLite file path (default ``$HPSEARCH_STORAGE``, else
            ``sqlite:///hpsearch.db``).

    Returns:
        The study.

    Raises:
        StudyNotFoundError: no study of that name in the store (a ``ValueError``).
        StorageError: the store cannot be opened (a missing SQLite file is not created).
    """
    from .study_handle import Study

    url = os.fspath(storage) if storage is not None else default_storage()
    study = Study(name, url)
    study.record  # noqa: B018 - refuses an unknown name now, not at the first property read
    return study


def list_studies(storage: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every study in the store, one row each, as ``hpsearch studies --json`` lists them.

    Args:
        storage: SQLAlchemy URL or SQLite file path (default ``$HPSEARCH_STORAGE``, else
            ``sqlite:///hpsearch.db``).

    Returns:
        A pandas DataFrame with columns ``name``, ``engine``, ``algorithm``, ``objective``,
        ``direction``, ``data``, ``trials``, ``complete``, ``pruned``, ``failed``, ``running``,
        ``best_value``, ``created_at`` and ``updated_at``, oldest study first.

    Raises:
        StorageError: the store cannot be opened (a missing SQLite file is not created).
    """
    import pandas as pd
    from hpsearch.storage import open_storage

    from .results.queries import study_dict

    url = os.fspath(storage) if storage is not None else default_storage()
    rows = []
    for summary in open_storage(url, create=False).list_studies():
        listed = study_dict(summary)
        states = {state.lower(): count for state, count in listed["states"].items()}
        rows.append({
            **{key: listed[key] for key in ("name", "engine", "algorithm", "objective", "direction", "data",
                                             "trials")},
            **{state: states.get(state, 0) for state in ("complete", "pruned", "failed", "running")},
            "best_value": listed["best_value"],
            "created_at": pd.Timestamp(summary.study.created_at),
            "updated_at": pd.Timestamp(summary.study.updated_at),
        })
    columns = ["name", "engine", "algorithm", "objective", "direction", "data", "trials", "complete",
               "pruned", "failed", "running", "best_value", "created_at", "updated_at"]
    return pd.DataFrame(rows, columns=columns)
