"""A worker process: trains trials of one study until the budget is reached or it is told to recycle.

The supervisor (:mod:`hpsearch.executors.supervisor`, behind ``hpsearch run``/``resume``/``worker``)
starts workers as ``python -m hpsearch.worker``, naming this module rather than importing it: a worker
runs a study (:mod:`hpsearch.study_execution`), a layer above the processes that carry it. Only workers
import TensorFlow, so a leak, an out-of-memory kill or a segfault costs one worker and its
in-flight trial, never the search. A worker exits 0 when it stopped on its own (budget reached, or
recycled after ``--recycle-after`` trials or past ``--max-memory-mb``; a warm worker told to go away), 1
or 2 with one ``error:`` line on stderr when the search cannot go on, 75 when the database failed during
a trial (the supervisor stops and says how to resume), 130 when interrupted.

With ``--standby`` it is a warm worker: it imports TensorFlow and Keras, then waits for one JSON line on
stdin before it claims anything, so the supervisor can replace a worker that retires without waiting for
those imports, and a run's first workers import while the run loads its data and creates the study.

Its start-up (dying with the supervisor, thread sizing, Keras imported lean) is
:mod:`hpsearch.executors.process_setup`, shared with the sklearn engine's fold processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import interrupts
from .errors import HpsearchError, StorageTroubleError
from .executors.process_setup import configure_threads, die_with_parent
from .runtime import lean_keras


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
    parser = argparse.ArgumentParser(prog="python -m hpsearch.worker",
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
        from .study_execution import work_on_study

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

        if not isinstance(error, HpsearchError):
            import traceback

            print(mask_credentials(traceback.format_exc(), storage), end="", file=sys.stderr)
            print(mask_credentials(f"error: unexpected {type(error).__name__} in a worker: {error}", storage),
                  file=sys.stderr)
            return 1
        print(mask_credentials(f"error: {error}", storage), file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
