"""How a process that trains starts: it dies with its parent, sizes TensorFlow's threads, imports Keras lean.

Shared by the two kinds of process that train: a worker (:mod:`hpsearch.worker`, started by the
supervisor) and a fold process of the sklearn engine's ``--jobs N`` (:func:`start_fold_process`, the
initializer of its process pool). Dask workers size their threads here too (``executors/cluster.py``):
``configure_threads`` is the one place that sizes TensorFlow's thread pools.
Kept apart from the worker's entry point, which drives a study, so the engines that start fold processes
import only this start-up, not the worker.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

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


def configure_threads(threads: int | None, *, inter_op: int | None = None) -> None:
    """Size TensorFlow's thread pools so K workers share the cores instead of oversubscribing them.

    Must run before TensorFlow executes anything; the environment variables cover libraries that read
    them at import.

    Args:
        threads: threads of one op (intra-op); None or 0 leaves TensorFlow's defaults.
        inter_op: ops run at once (default: 1 for one thread, else 2). A fold process runs one op at a
            time: its fits are small and its siblings hold the other cores.

    Raises:
        RuntimeError: TensorFlow already ran in this process (its pools are fixed by then).
    """
    if not threads:
        return
    if inter_op is None:
        inter_op = 1 if threads == 1 else 2
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter_op)
    if threads == 1 and os.environ.get("KERAS_BACKEND") == "jax":
        # XLA's CPU kernels split their work across every core unless told not to; read at JAX's import.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def start_fold_process(threads: int, epochs_address: Any, epochs_authkey: bytes, payload: bytes) -> None:
    """Initializer of a process that fits folds for the sklearn engine's ``--jobs N``.

    It dies with the search (a ``kill -9`` of it leaves no process training on its own), leaves Ctrl-C to
    its parent, imports Keras lean and sizes TensorFlow's threads (``threads`` each, so N processes share
    the cores) before it unpickles the data and the estimator: unpickling the estimator imports Keras,
    which is why it comes as bytes. It never opens the database: each epoch goes back to the parent as
    it ends (:mod:`hpsearch.executors.epoch_stream`).

    Args:
        threads: TensorFlow threads of this process.
        epochs_address, epochs_authkey: where the parent receives the epochs.
        payload: the pickled (x, y, sample_weight, estimator, scoring, trainer) of every fold.
    """
    import pickle

    die_with_parent()
    # Ctrl-C reaches the whole process group: the parent records the interruption and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    lean_keras.install()
    configure_threads(threads, inter_op=1)
    from .fold_tasks import open_fold_process

    open_fold_process(epochs_address, epochs_authkey, *pickle.loads(payload))
