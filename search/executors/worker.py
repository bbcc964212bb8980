"""A worker process: trains trials of one study until the budget is reached or it is told to recycle.

The supervisor (``hpsearch run``/``resume``/``worker``) starts workers as ``python -m
hpsearch.executors.worker``;
only workers import TensorFlow, so a leak, an out-of-memory kill or a segfault costs one worker and its
in-flight trial, never the search. A worker exits 0 when it stopped on its own (budget reached, or
recycled after ``--recycle-after`` trials or past ``--max-memory-mb``; a warm worker told to go away), 1
or 2 with one ``error:`` line on stderr when the search cannot go on, 75 when the database failed during
a trial (the supervisor stops and says how to resume), 130 when interrupted.

With ``--standby`` it is a warm worker: it imports TensorFlow and Keras, then waits for one JSON line on
stdin before it claims anything, so the supervisor can replace a worker that retires without waiting for
those imports, and a run's first workers import while the run loads its data and creates the study.

:func:`start_fold_process` starts the other kind of process that trains: a fold process of the sklearn
engine's ``--jobs N``. Both import Keras without what it only loads for features we do not use
(``hpsearch.runtime.lean_keras``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from collections.abc import Sequence

from .. import interrupts
from ..errors import StorageTroubleError
from ..runtime import lean_keras

#: prctl option asking the kernel to signal us when our parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``kill -9`` of the supervisor must not leave orphan workers training on their own."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def configure_threads(threads: int | None) -> None:
    """Size TensorFlow's thread pools so K workers share the cores instead of oversubscribing them.

    Must run before TensorFlow executes anything; the environment variables cover libraries that read
    them at import.
    """
    if not threads:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if threads == 1 else "2"
    if threads == 1 and os.environ.get("KERAS_BACKEND") == "jax":
        # XLA's CPU kernels split their work across every core unless told not to; read at JAX's import.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 2)


def start_fold_process(threads: int, storage_url: str, payload: bytes) -> None:
    """Initializer of a process that fits folds for the sklearn engine's ``--jobs N``.

    It dies with the search (a ``kill -9`` of it leaves no process training on its own), leaves Ctrl-C to
    its parent, and imports Keras lean before it unpickles the data and the estimator: unpickling the
    estimator imports Keras, which is why it comes as bytes.
    """
    import pickle

    die_with_parent()
    # Ctrl-C reaches the whole process group: the parent records the interruption and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    lean_keras.install()
    from ..engines.sklearn.estimators import init_fold_process

    init_fold_process(threads, storage_url, *pickle.loads(payload))


def _wait_for_start(args: argparse.Namespace) -> bool:
    """A warm worker (``--standby``): imported, it waits for the supervisor's start line, which carries what
    is only known then (the time left, whether retries are due). False: told to go away (end of input)."""
    import keras  # noqa: F401 - the import is what a warm worker saves its successor-to-be

    line = sys.stdin.readline()
    if not line.strip():
        return False
    start = json.loads(line)
    args.timeout = start.get("timeout")
    args.retries = bool(start.get("retries"))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpsearch.executors.worker",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("study")
    # The URL comes from HPSEARCH_STORAGE: a password on the command line would show in `ps`.
    parser.add_argument("--storage", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--recycle-after", type=int, default=None)
    parser.add_argument("--max-memory-mb", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--retries", action="store_true", help="retry interrupted trials' configs first")
    parser.add_argument("--standby", action="store_true",
                        help="import and wait: start on a JSON line on stdin, exit on end of input")
    args = parser.parse_args(argv)

    storage = args.storage or os.environ.get("HPSEARCH_STORAGE")
    if not storage:
        parser.error("the storage URL must be given in HPSEARCH_STORAGE")
    die_with_parent()
    # The supervisor stops workers with SIGINT; SIGTERM (from a job scheduler) ends them the same way.
    interrupts.install()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    lean_keras.install()
    try:
        configure_threads(args.threads)
        from ..study_execution import work_on_study

        if args.standby and not _wait_for_start(args):
            return 0
        work_on_study(
            args.study, storage, session_trials=args.recycle_after, memory_limit_mb=args.max_memory_mb,
            timeout_s=args.timeout, retries=args.retries,
        )
    except KeyboardInterrupt:
        return 130
    except StorageTroubleError as error:
        from hpsearch.storage.credentials import mask_credentials  # here: a warm worker's start stays lean

        print(mask_credentials(f"error: {error}", storage), file=sys.stderr)
        return StorageTroubleError.worker_exit_code
    except Exception as error:  # noqa: BLE001 - the supervisor relays this one line
        # The supervisor relays what we print to the user's terminal: never the storage password.
        from hpsearch.storage.credentials import mask_credentials

        code = getattr(error, "exit_code", None)
        if code is None:
            import traceback

            print(mask_credentials(traceback.format_exc(), storage), end="", file=sys.stderr)
            print(mask_credentials(f"error: unexpected {type(error).__name__} in a worker: {error}", storage),
                  file=sys.stderr)
            return 1
        print(mask_credentials(f"error: {error}", storage), file=sys.stderr)
        return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
