"""Trials and folds as tasks on a Dask cluster (``--dask ADDRESS``), for engines that drive one oracle.

Where trials execute is a choice apart from which engine proposes them. With ``--dask``, the engine still
proposes in one hpsearch process and the trial runner still claims, records and finishes every trial
there; only the training itself (one scikit-learn fold, one KerasTuner trial) runs as a task on a Dask
worker, a pure function of the configuration and the data. Dask workers need hpsearch and the
``distributed`` package installed, never the database: a task returns its per-epoch logs with its result,
and the hpsearch side records them through the trial's ``Attempt`` (one sink for every executor). A
fold task runs :func:`hpsearch.training.fold_fitting.fit_and_score`, a trial task
:func:`hpsearch.training.fit_tasks.run_fit_task`: tasks never import an engine.

What Dask gives us and what we keep:

- a worker that dies mid-task (``kill -9``, out of memory, its machine gone) costs only that task: the
  scheduler runs it again on another worker, up to ``distributed.scheduler.allowed-failures`` (3) deaths,
  after which the task errs with ``KilledWorker`` and its trial fails as the configuration's fault;
- the data travels once, as the result of a task the scheduler can compute again if every worker
  holding it dies (scattered data could not be recomputed);
- the cluster itself going away (scheduler lost) is not a configuration's fault: the trials in flight are
  marked interrupted, the run stops with one message, and ``hpsearch resume`` retries them.

Each Dask worker process fits one model at a time (Keras keeps its session and seeds per process), with
TensorFlow sized to the worker's cores; run ``dask worker --nthreads 1``, and with ``--nworkers K`` on one
machine set ``HPSEARCH_TF_THREADS`` to cores / K.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ClusterLostError, SearchFailedError, UsageError
from ..settings import StudySettings

if TYPE_CHECKING:
    from ..training.fit_tasks import FitReport, FitTask

#: Environment variable giving ``--dask`` when ``hpsearch run`` is not given it.
DASK_ENV = "HPSEARCH_DASK"
#: ``--dask local`` on resume: train on this machine again.
LOCAL = "local"
#: Environment variable of a Dask worker: TensorFlow threads per fit (default: the worker's cores).
TF_THREADS_ENV = "HPSEARCH_TF_THREADS"
CONNECT_TIMEOUT_S = 30
#: Seconds between checks, while waiting on a task, of whether the run is stopping.
POLL_S = 0.5


def dask_address(settings: StudySettings) -> str | None:
    """The cluster a study's trials run on, or None for this machine."""
    address = settings.dask
    return None if address in (None, "", LOCAL) else str(address)


def check_address(address: Any) -> None:
    if address is None:
        return
    if not isinstance(address, str) or not address.strip():
        raise UsageError(f"--dask must be a scheduler address such as tcp://host:8786 or a scheduler file, "
                         f"but got {address!r}")


def describe(address: str) -> str:
    return f"trials run as tasks on the Dask cluster of scheduler {address}"


def connect(address: str) -> Any:
    """A client of the scheduler at ``address`` (``tcp://host:port``, or a ``--scheduler-file`` path)."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--dask needs the 'distributed' package on this machine and on every Dask worker: "
            "pip install 'hpsearch[cluster]'"
        ) from None
    try:
        if Path(address).is_file():
            return Client(scheduler_file=address, timeout=CONNECT_TIMEOUT_S)
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise SearchFailedError(
            f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s ({error}); start it "
            "with `dask scheduler` and workers with `dask worker ADDRESS --nthreads 1`"
        ) from None


def slots(client: Any) -> int:
    """How many tasks the cluster runs at once now (at least 1: a task waits for a worker to join)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - the next wait on a task reports a lost cluster
        return 1


def _hold(payload: Any) -> Any:
    return payload


def share(client: Any, payload: Any, name: str) -> Any:
    """Send ``payload`` to the cluster once; tasks take the returned future as an argument.

    A task's result, not ``scatter``: if every worker holding it dies, the scheduler computes it again
    from the task, which it keeps, where scattered data would be lost for good.
    """
    return client.submit(_hold, payload, key=f"hpsearch-data-{name}-{uuid.uuid4().hex[:8]}", pure=False)


def task_key(kind: str, name: str) -> str:
    return f"hpsearch-{kind}-{name}-{uuid.uuid4().hex[:8]}"


def completed(futures: list[Any], address: str, stopping: StopSignal) -> Iterator[Any]:
    """The results of ``futures`` as their tasks end, re-raising a task's own error.

    ``KilledWorker`` (the task's workers died ``allowed-failures`` times: the configuration most likely
    kills them) is the trial's failure, like any error of the task; a lost scheduler is
    ``ClusterLostError``; a run that is stopping (Ctrl-C, another trial's fatal error) cancels the tasks.
    """
    from concurrent.futures import CancelledError

    from distributed import TimeoutError as DaskTimeoutError
    from distributed import wait as dask_wait

    pending = list(futures)
    while pending:
        stopping.raise_if_set(pending)
        try:
            done, _ = dask_wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
        except (DaskTimeoutError, TimeoutError):
            continue
        except (OSError, RuntimeError) as error:
            raise ClusterLostError(_lost(address, error)) from None
        for future in [future for future in pending if future in done]:
            pending.remove(future)
            if future.status == "cancelled":
                stopping.raise_if_set(pending)
                raise ClusterLostError(_lost(address, "its tasks were cancelled"))
            try:
                value = future.result()
            except CancelledError as error:
                stopping.raise_if_set(pending)
                raise ClusterLostError(_lost(address, error)) from None
            except (OSError, RuntimeError) as error:
                if type(error).__module__.startswith(("distributed", "tornado", "asyncio")):
                    raise ClusterLostError(_lost(address, error)) from None
                raise
            yield value


def result(future: Any, address: str, stopping: StopSignal) -> Any:
    """The result of one task (see ``completed``)."""
    return next(iter(completed([future], address, stopping)))


def _lost(address: str, why: Any) -> str:
    return f"the Dask cluster at {address} went away ({why})"


class StopSignal:
    """Tells trials waiting on tasks that the run stops: Ctrl-C, or another trial's fatal error."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str | None = None) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self, futures: list[Any] = ()) -> None:  # type: ignore[assignment]
        if not self._event.is_set():
            return
        for future in futures:
            future.cancel()
        if self.reason is None:
            raise KeyboardInterrupt  # the runner records the trial as interrupted by the user
        raise ClusterLostError(f"the run stopped: {self.reason}")


@dataclass
class InFlight:
    """Several trials training at once, each in a thread blocked on its task; claims stay in order.

    ``runner.run`` trains one trial and blocks until it is recorded; K Dask workers stay busy only if K
    trials are in flight, so each runs in its own thread. The engine proposes from the calling thread
    only (oracles are not shared with the threads), one proposal at a time: the next one starts once the
    previous one is claimed, so trial numbers follow proposal order.
    """

    stopping: StopSignal = field(default_factory=StopSignal)
    running: dict[Future, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="hpsearch-trial")

    def __len__(self) -> int:
        return len(self.running)

    def start(self, tag: Any, work: Callable[[Callable[[], None]], Any]) -> None:
        """Run ``work(claimed)`` in a thread; return once it called ``claimed()`` or ended."""
        claimed = threading.Event()
        future = self._pool.submit(work, claimed.set)
        self.running[future] = tag
        while not claimed.wait(0.05) and not future.done():
            pass

    def next_done(self) -> list[tuple[Any, Future]]:
        """Wait until at least one trial ends; its tag and future (``.result()`` re-raises its error)."""
        done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
        return [(self.running.pop(future), future) for future in done]

    def stop(self, reason: str | None = None) -> None:
        """Stop the trials in flight (each is recorded as interrupted) and wait for their threads."""
        if self.running:
            self.stopping.set(reason)
            wait(list(self.running))
            self.running.clear()
        self._pool.shutdown(wait=True)


@contextlib.contextmanager
def trials_in_flight(study: str) -> Iterator[InFlight]:
    """The trials in flight of one run on the cluster. However the run ends, they are stopped (each
    recorded as interrupted) before this returns; a lost cluster's error says how to continue."""
    in_flight = InFlight()
    stopped: str | None = None
    try:
        yield in_flight
    except KeyboardInterrupt:
        raise  # the trials stop as interrupted by the user
    except ClusterLostError as error:
        stopped = str(error)
        raise ClusterLostError(f"{error}; completed trials are saved; continue with "
                               f"`hpsearch resume {shlex.quote(study)}` once the cluster is back") from None
    except BaseException as error:
        stopped = f"{type(error).__name__}: {error}"
        raise
    finally:
        in_flight.stop(stopped)


# -- on the Dask worker ---------------------------------------------------------------------------------
#: One fit at a time per worker process: Keras keeps its session and random seeds per process.
_FIT_LOCK = threading.Lock()
_CONFIGURED: list[bool] = []
#: The worker process's compiled models per ``--trainer``, reused by fold fits of the same structure (under
#: ``_FIT_LOCK``).
_COMPILED_MODELS: dict[str, Any] = {}


class _ThreadRandom:
    """The ``random`` module as each thread sees it: a generator of its own.

    Keras draws the seeds of unseeded initializers from Python's global ``random`` generator, which
    SciKeras and ``keras.utils.set_random_seed`` seed before each build. On a Dask worker the event loop
    thread draws from that same generator meanwhile, so a seeded fit would differ from run to run (and
    from the same fit on this machine). Each thread gets its own generator instead, seeded the same way:
    the fit draws exactly the numbers it would draw alone in a process.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _generator(self) -> Any:
        import random

        generator = getattr(self._local, "generator", None)
        if generator is None:
            generator = self._local.generator = random.Random()
        return generator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._generator(), name)


def _private_python_random() -> None:
    import importlib

    proxy = _ThreadRandom()
    for module_name, attribute in (("keras.src.random.seed_generator", "python_random"),
                                   ("keras.src.utils.rng_utils", "random"),
                                   ("scikeras.utils.random_state", "random")):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute):
            setattr(module, attribute, proxy)


def prepare_worker_process() -> None:
    """Once per Dask worker process, before it runs anything: TensorFlow's thread pools sized, and
    Python's random numbers private to the fitting thread (see ``_ThreadRandom``)."""
    if _CONFIGURED:
        return
    _CONFIGURED.append(True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threads = os.environ.get(TF_THREADS_ENV)
    if threads is None:
        try:
            threads = str(len(os.sched_getaffinity(0)))
        except AttributeError:
            threads = str(os.cpu_count() or 1)
    from .process_setup import configure_threads

    try:
        configure_threads(max(1, int(threads)))
    except (RuntimeError, ValueError):
        pass  # TensorFlow already ran in this process (another task's library), or a bad value: defaults
    _private_python_random()


def fit_fold_task(data: tuple, params: Mapping[str, Any], fold: int, train: Any, test: Any) -> tuple:
    """One (candidate, fold) fit on a Dask worker: the ``FoldResult`` and the fold's per-epoch logs, which
    the trial's process records (``hpsearch.executors.folds.DaskFitter``)."""
    prepare_worker_process()
    from ..training.fold_fitting import fit_cache, release_fit
    from ..training.scoring import scorer
    from .fold_tasks import Epochs, fit_fold_sending

    x, y, sample_weight, estimator, scoring, trainer = data
    with _FIT_LOCK:
        cache = _COMPILED_MODELS.get(trainer)
        if cache is None:
            cache = _COMPILED_MODELS[trainer] = fit_cache(trainer)
        epochs: Epochs = []
        try:
            result = fit_fold_sending(estimator, params, (x, y, sample_weight), train, test,
                                      scorer(estimator, scoring), fold=fold, compiled_models=cache,
                                      trainer=trainer, send=lambda epoch, logs: epochs.append((epoch, logs)))
            return result, epochs
        finally:
            # The cached models stay alive: a full collection would walk them all at every fit.
            release_fit(trainer)


def train_trial_task(dataset: Any, task: FitTask) -> FitReport:
    """One trial's fit (a KerasTuner trial, one Hyperband round) on a Dask worker, with the shared builder.

    The report goes back to the trial's ``Attempt.take`` (``hpsearch.training.fit_tasks``), which
    records its epochs: Dask workers never open the database. With a shared ``--checkpoint-dir`` the fit
    keeps its in-trial checkpoint there, so the task run again after its worker died continues it.
    """
    prepare_worker_process()
    from ..training.fit_tasks import run_fit_task

    with _FIT_LOCK:
        return run_fit_task(task, dataset)
