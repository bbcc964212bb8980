"""The ``hpsearch`` command line.

Exit codes: 0 success, 1 failure at run time, 2 bad usage or bad input, 130 interrupted by Ctrl-C.
Errors are one sentence on stderr; ``--debug`` adds the traceback. Query commands import only storage,
so they answer without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import interrupts
from .cli_parser import DEFAULT_STORAGE, build_parser
from .cli_parser import storage_default as _storage_default
from .errors import HpsearchError, UsageError

__all__ = ["DEFAULT_STORAGE", "EXIT_INTERRUPTED", "build_parser", "main"]

EXIT_INTERRUPTED = 130


def _isolation(args: argparse.Namespace) -> Any:
    from .study_options import DEFAULT_MAX_WORKER_MEMORY_MB, DEFAULT_RECYCLE_AFTER, Isolation

    return Isolation(
        workers=args.workers,
        recycle_after=DEFAULT_RECYCLE_AFTER if args.recycle_after is None else args.recycle_after,
        memory_limit_mb=(
            DEFAULT_MAX_WORKER_MEMORY_MB if args.max_worker_memory is None else args.max_worker_memory
        ),
        in_process=getattr(args, "in_process", False),
    )


def _print_json(data: Any, out: TextIO) -> None:
    from .results.queries import json_safe

    json.dump(json_safe(data), out, indent=2, allow_nan=False)
    out.write("\n")


# -- commands ---------------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from .engines.base import ENGINE_OPTIONS
    from .python_api import run_options
    from .study import run_study

    # The options `hpsearch.run` builds from Python, built by the same function: one code path.
    options = run_options(
        args.space, args.data, target=args.target, engine=args.engine, algorithm=args.algorithm,
        task=args.task, study=args.study, trials=args.trials, timeout=args.timeout, storage=args.storage,
        seed=args.seed, pruner=args.pruner, class_weight=args.class_weight, sample_weight=args.sample_weight,
        max_failures=args.max_failures, stale_after=args.stale_after, checkpoint_dir=args.checkpoint_dir,
        resume=args.resume, dry_run=args.dry_run, progress=not args.quiet, warm_start=args.warm_start,
        workers=args.workers, recycle_after=args.recycle_after, max_worker_memory=args.max_worker_memory,
        in_process=args.in_process, drop=_dropped_columns(args.drop),
        engine_options={key: getattr(args, key) for key in ENGINE_OPTIONS},
    )
    run_study(options, out=out)
    return 0


def _dropped_columns(given: list[str] | None) -> list[str]:
    """``--drop A,B --drop C`` -> [A, B, C]; a column name is kept as typed, spaces inside included."""
    names = [name.strip() for text in given or () for name in text.split(",")]
    if any(not name for name in names):
        raise UsageError("--drop takes column names separated by commas, but one of them is empty")
    return names


def _cmd_resume(args: argparse.Namespace, out: TextIO) -> int:
    from .study import resume_study

    given = {
        key: value
        for key in ("max_failures", "jobs", "pruner", "seed", "cv", "class_weight", "sample_weight", "task",
                    "max_epochs", "factor", "dask", "min_resources", "halving_resource", "n_candidates",
                    "pack", "trainer", "backend", "population")
        if (value := getattr(args, key)) is not None
    }
    if args.stale_after is not None:
        given["stale_after_s"] = args.stale_after
    if args.checkpoint_dir is not None:
        given["checkpoint_dir"] = str(Path(args.checkpoint_dir).expanduser().resolve())
    resume_study(
        args.study, args.storage, trials=args.trials, timeout_s=args.timeout, space=args.space,
        engine=args.engine, data=args.data, target=args.target, given=given, progress=not args.quiet,
        isolation=_isolation(args), out=out,
    )
    return 0


def _cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    from .study import join_study

    join_study(args.study, args.storage, isolation=_isolation(args), progress=not args.quiet, out=out)
    return 0


def _open(args: argparse.Namespace) -> Any:
    from hpsearch.storage import open_storage

    return open_storage(args.storage, create=False)


def _cmd_studies(args: argparse.Namespace, out: TextIO) -> int:
    from .results.queries import studies_table, study_dict

    storage = _open(args)
    _print_listing(storage.list_studies(), args.json, study_dict, studies_table,
                   f"there are no studies yet in {storage.location.shown}", out)
    return 0


def _cmd_trials(args: argparse.Namespace, out: TextIO) -> int:
    from .results.queries import list_trials, trial_dict, trials_table

    storage = _open(args)
    study = storage.get_study(args.study)
    trials = list_trials(storage, study, states=args.state, sort=args.sort, descending=args.desc,
                         limit=args.limit, with_epochs=args.json)
    _print_listing(trials, args.json, trial_dict, trials_table,
                   f"study '{study.name}' has no trials matching that", out)
    return 0


def _print_listing(rows: list[Any], as_json: bool, to_dict: Callable[[Any], dict[str, Any]],
                   table: Callable[[list[Any]], str], empty: str, out: TextIO) -> None:
    """A listing as JSON (``--json``), as a table, or the sentence ``empty`` when there is nothing."""
    if as_json:
        _print_json([to_dict(row) for row in rows], out)
    else:
        print(table(rows) if rows else empty, file=out)


def _cmd_best(args: argparse.Namespace, out: TextIO) -> int:
    from .results.queries import best_text, best_trials, model_dict, trial_dict

    storage = _open(args)
    study = storage.get_study(args.study)
    trials = best_trials(storage, study, args.top)
    models = list(reversed(storage.list_models(study.id)))  # newest first
    if args.json:
        best = trial_dict(trials[0], curves=False)
        _print_json(
            {
                "study": study.name,
                "engine": study.engine,
                "algorithm": study.algorithm,
                "objective": study.objective,
                "direction": study.direction,
                **{key: best[key] for key in ("number", "value", "params", "metrics", "copied_from")},
                "top": [trial_dict(trial, curves=False) for trial in trials],
                "models": [model_dict(model) for model in models],
            },
            out,
        )
    else:
        print(best_text(study, trials, models), file=out)
    return 0


def _cmd_retrain(args: argparse.Namespace, out: TextIO) -> int:
    from .results.retrain import DEFAULT_LR_FACTOR, DEFAULT_LR_PATIENCE, RetrainOptions, retrain_study

    asked = args.lr_factor is not None or args.lr_patience is not None
    options = RetrainOptions(
        trial=args.trial, epochs=args.epochs, patience=args.patience, restore_best=args.restore_best,
        lr_factor=DEFAULT_LR_FACTOR if args.lr_factor is None else args.lr_factor,
        lr_patience=DEFAULT_LR_PATIENCE if args.lr_patience is None else args.lr_patience,
        # Asking for the plateau callback turns it on beside an lr_schedule; otherwise the default applies.
        reduce_lr=True if asked else None,
        threshold_for=args.threshold_for, seeds=args.seeds, seed=args.seed, out=args.out,
        progress=not args.quiet,
    )
    options.check()  # bad numbers are refused before TensorFlow loads or the data is read
    retrain_study(args.study, args.storage, options, out=out)
    return 0


def _cmd_predict(args: argparse.Namespace, out: TextIO) -> int:
    from .results.export import predict_file, write_predictions

    predictions, _card = predict_file(args.model, args.data)
    if args.out is None:
        predictions.to_csv(out, index=False)
    else:
        written = write_predictions(predictions, args.out)
        print(f"wrote {len(predictions)} predictions to {written}", file=out)
    return 0


def _cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    from .results.compare import compare_studies, compare_text

    rows = compare_studies(_open(args), args.studies)
    if args.json:
        _print_json(rows, out)
    else:
        print(compare_text(rows), file=out)
    return 0


def _cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
    from .results.plots import plot_study

    storage = _open(args)
    for path in plot_study(storage, storage.get_study(args.study), args.out, top=args.top):
        print(f"wrote {path}", file=out)
    return 0


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: starlette and uvicorn are for this command only, never for `hpsearch --help`.
    from .service import ServeOptions, serve

    token = args.token if args.token is not None else (os.environ.get("HPSEARCH_TOKEN") or None)
    serve(ServeOptions(storage=args.storage, host=args.host, port=args.port, token=token,
                       data_dir=args.data_dir))
    return 0


def _cmd_db(args: argparse.Namespace, out: TextIO) -> int:
    from hpsearch.storage import StoreLocation, upgrade_database

    location = StoreLocation.parse(args.storage)
    before, after = upgrade_database(location)
    where = location.shown  # never the password of a PostgreSQL URL
    if before == after:
        print(f"{where} is already at schema revision {after}", file=out)
    else:
        print(f"upgraded {where} from schema revision {before or '(none)'} to {after}", file=out)
    return 0


_COMMANDS = {
    "run": _cmd_run, "resume": _cmd_resume, "worker": _cmd_worker,
    "studies": _cmd_studies, "trials": _cmd_trials, "best": _cmd_best, "db": _cmd_db,
    "retrain": _cmd_retrain, "predict": _cmd_predict, "compare": _cmd_compare, "plot": _cmd_plot,
    "serve": _cmd_serve,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one command; returns the exit code (the console script passes it to ``sys.exit``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    # TensorFlow's C++ start-up chatter is noise for users; they can still override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .runtime import lean_keras, quiet_tensorflow

    quiet_tensorflow.install()  # the lines printed before that variable is read
    lean_keras.install()  # commands that train here start faster
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage error
        return int(exit_.code or 0)
    if getattr(args, "storage", "unset") is None:
        args.storage = _storage_default()
    # Ctrl-C and SIGTERM (a job scheduler) stop a search alike: the trial is recorded as interrupted and
    # we exit 130. The request is remembered, so one that lands inside a finalizer is not lost.
    try:
        with interrupts.handled():
            return _COMMANDS[args.command](args, out)
    except KeyboardInterrupt as interrupt:
        resume = getattr(interrupt, "resume_command", None)
        message = "interrupted; completed trials are saved"
        print(f"\n{message}; resume with: {resume}" if resume else f"\n{message}", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`hpsearch trials S --json | head`): what it read is all it wanted. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - every error ends as one sentence and an exit code
        from hpsearch.storage.credentials import mask_credentials

        # Whatever raised it, a storage password never reaches the terminal (or a CI log).
        storage_url = getattr(args, "storage", None) or ""
        if args.debug:
            print(mask_credentials(traceback.format_exc(), storage_url), end="", file=err)
        if not isinstance(error, HpsearchError):  # a bug or an unforeseen failure: no sentence was written
            print(mask_credentials(f"error: unexpected {type(error).__name__}: {error} "
                                   "(rerun with --debug for details)", storage_url), file=err)
            return 1
        print(mask_credentials(f"error: {error}", storage_url), file=err)
        return error.exit_code

if __name__ == "__main__":
    sys.exit(main())
