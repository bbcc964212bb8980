"""The ``hpsearch`` command line's arguments: every command and option, with its help text.

Kept apart from the commands (:mod:`hpsearch.cli`) so the docs site's CLI reference reads the same parser
the command line uses (``scripts/docs_cli.py``), and so neither module grows past what one reads at once.
"""

from __future__ import annotations

import argparse
import os

from .training.population_option import AUTO_POPULATION, AUTO_POPULATION_UNINFORMED
from .training.population_option import cli_population as _population

DEFAULT_STORAGE = "sqlite:///hpsearch.db"


def storage_default() -> str:
    """The storage a command uses when `--storage` is not given: `$HPSEARCH_STORAGE`, else `./hpsearch.db`."""
    return os.environ.get("HPSEARCH_STORAGE") or DEFAULT_STORAGE


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", default=None, metavar="URL",
        help="SQLAlchemy URL or SQLite file path (default: $HPSEARCH_STORAGE or sqlite:///hpsearch.db)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got '{text}'") from None
    return value


def _add_isolation(parser: argparse.ArgumentParser, *, in_process: bool = True) -> None:
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="worker processes training at once (optuna only for K > 1; default 1)")
    parser.add_argument("--recycle-after", type=int, default=None, metavar="N",
                        help="replace a worker after N trials to shed leaked memory (default 50)")
    parser.add_argument("--max-worker-memory", type=float, default=None, metavar="MB",
                        help="replace a worker once its resident memory passes MB MiB (default 4096)")
    if in_process:
        parser.add_argument("--in-process", action="store_true",
                            help="train in this process instead of supervised workers (for debugging)")


def _count_or_word(text: str) -> int | str:
    """A number where one was typed (``--min-resources 3``), else the word as given; the engine says
    which words it takes, in its own one-sentence error."""
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _add_halving(parser: argparse.ArgumentParser, *, check_only: bool = False) -> None:
    """Successive halving's plan (sklearn halving-grid / halving-random); on resume, only checked."""
    note = "refuse unless the study used this; " if check_only else ""
    parser.add_argument("--halving-resource", default=None, choices=("epochs", "rows"),
                        help=f"{note}sklearn halving-*: what a rung gives more of (default epochs)")
    parser.add_argument("--min-resources", type=_count_or_word, default=None,
                        metavar="N",
                        help=f"{note}sklearn halving-*: epochs or rows of the first rung, or exhaust / "
                        "smallest (default: exhaust for halving-grid, smallest for halving-random); optuna "
                        "asha and hyperband pruners: epochs of the first rung (default 1)")
    parser.add_argument("--n-candidates", type=_count_or_word, default=None, metavar="N",
                        help=f"{note}sklearn halving-random: candidates of the first rung (default exhaust)")


def build_parser() -> argparse.ArgumentParser:
    from .engines.registry import available_engines

    parser = argparse.ArgumentParser(
        prog="hpsearch",
        description="Hyperparameter search for Keras models: one search space, one trial store.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="start a study (or --resume one)",
                              description="Start a search. With no arguments: the bundled default space "
                              "on the bundled digits data, Optuna TPE, 10 trials.")
    run.add_argument("space", nargs="?", default=None,
                     help="space file (YAML/JSON) or bundled preset name (default: the 'default' preset)")
    run.add_argument("--engine", default="optuna", choices=available_engines(), help="search engine")
    run.add_argument("--algorithm", default=None,
                     help="optuna: tpe (default), random, grid, cmaes, bohb; keras-tuner: random (default), "
                     "hyperband, bayesian; sklearn: grid (default), random, halving-grid, halving-random")
    run.add_argument("--data", default="digits",
                     help="bundled dataset (digits, breast_cancer, iris, wine, diabetes, imbalanced), a CSV "
                     "path (with --target) or an .npz with X and y (default: digits)")
    run.add_argument("--target", default=None, help="target column of a CSV file")
    run.add_argument("--drop", action="append", default=None, metavar="COL[,COL...]",
                     help="leave these feature columns out (an id, free text); may be repeated; recorded "
                     "with the study, so resume, retrain and workers leave them out too")
    run.add_argument("--task", default=None, choices=("auto", "binary", "multiclass", "regression"),
                     help="override the space's task (default: the space's, usually auto)")
    run.add_argument("--study", default=None, help="study name (default: DATA-ENGINE-ALGORITHM-TIME)")
    run.add_argument("--trials", type=int, default=None,
                     help="trial budget (default 10 without --timeout; sklearn grid: the whole grid; "
                     "keras-tuner hyperband: one Hyperband iteration)")
    run.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="stop starting trials after this many seconds")
    run.add_argument("--seed", type=int, default=None,
                     help="seed for data split, sampler and weights (default 0)")
    run.add_argument("--pruner", default=None,
                     help="optuna: hyperband (default; asha with --algorithm bohb), median, asha, curve, "
                     "none")
    run.add_argument("--pack", type=int, default=None, metavar="K",
                     help="optuna: ask K configurations at a time and train those that share batch size and "
                     "epochs together in one process, each with its own seed, curve, pruning and record "
                     "(default 1: every trial alone)")
    run.add_argument("--population", type=_population, default=None, metavar="auto|off|K",
                     help=f"optuna, and keras-tuner's random search: ask K configurations at a time "
                     f"(auto: {AUTO_POPULATION}; random and grid samplers: {AUTO_POPULATION_UNINFORMED}) and "
                     "train those of one depth and batch size as one stacked model, each still its own "
                     "trial with its own seed, curve, pruning and record (default off); see "
                     "docs/population.md")
    run.add_argument("--class-weight", default=None, choices=("balanced",),
                     help="weight classes inversely to their frequency")
    run.add_argument("--sample-weight", default=None, metavar="COLUMN",
                     help="CSV column of per-row weights for the training loss (not a feature)")
    run.add_argument("--cv", type=int, default=None, metavar="K",
                     help="sklearn: cross-validation folds (default 3)")
    run.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="sklearn: folds fitted in parallel (default 1)")
    run.add_argument("--trainer", default=None, metavar="NAME",
                     help="sklearn: what fits each fold: scikeras (default; SciKeras' fit, GridSearchCV's "
                     "scores to the bit), hpsearch (the same training outside Keras' fit machinery, "
                     "several times faster; scores within the noise of the batch order) or population "
                     "(hpsearch's training with candidates x folds stacked into populations)")
    run.add_argument("--backend", default=None, metavar="NAME",
                     help="optuna, keras-tuner: the Keras backend trials train on, tensorflow (default; the "
                     "faster here) or jax (models compiled with XLA); workers are started with it")
    run.add_argument("--dask", default=None, metavar="ADDRESS",
                     help="sklearn, keras-tuner: train folds / trials as tasks on the Dask cluster of this "
                     "scheduler (tcp://host:8786 or a scheduler file; default: $HPSEARCH_DASK, else here)")
    run.add_argument("--max-epochs", type=int, default=None,
                     help="keras-tuner hyperband: most epochs a model trains (default: the space's epochs)")
    run.add_argument("--factor", type=int, default=None,
                     help="keras-tuner hyperband, sklearn halving-*, optuna asha and hyperband pruners: "
                     "reduction factor between rounds or rungs (default 3)")
    _add_halving(run)
    run.add_argument("--max-failures", type=int, default=None,
                     help="stop after this many consecutive failed trials (default 5)")
    run.add_argument("--stale-after", type=_seconds, default=None, metavar="SECONDS",
                     help="fail and retry a trial whose worker sent no heartbeat for this long (default 60)")
    run.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                     help="where trials of 10+ epochs keep their last epoch's checkpoint, so that a retry "
                     "continues them (default: hpsearch-checkpoints/ next to the SQLite file); a disk all "
                     "machines share, for several machines")
    run.add_argument("--warm-start", default=None, metavar="STUDY[,STUDY...]",
                     help="seed the new study with the completed trials of these studies (any engine; same "
                     "data, task and objective): trials inside the new space are copied, the others listed "
                     "as skipped; copies do not count toward --trials")
    run.add_argument("--resume", action="store_true", help="continue the study if it already exists")
    run.add_argument("--dry-run", action="store_true",
                     help="validate space and data, show the plan and candidate count, train nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_isolation(run)
    _add_storage(run)

    resume = commands.add_parser("resume", help="continue an interrupted study to its budget")
    resume.add_argument("study", help="name of the study to continue")
    resume.add_argument("--trials", type=int, default=None, help="new total trial budget")
    resume.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS", help="new time budget")
    resume.add_argument("--space", default=None, help="refuse to resume unless the study used this space")
    resume.add_argument("--engine", default=None, help="refuse to resume unless the study used this engine")
    resume.add_argument("--data", default=None, help="refuse to resume unless the study used this data")
    resume.add_argument("--target", default=None, help="target column of the CSV file")
    resume.add_argument("--max-failures", type=int, default=None, help="new consecutive-failure limit")
    resume.add_argument("--jobs", type=int, default=None, metavar="N", help="sklearn: new parallel folds")
    resume.add_argument("--pruner", default=None,
                        help="optuna: new pruner (median, hyperband, asha, curve, none)")
    resume.add_argument("--pack", type=int, default=None, metavar="K", help="optuna: new pack size")
    resume.add_argument("--population", type=_population, default=None, metavar="auto|off|K",
                        help="optuna, keras-tuner random: new population size")
    resume.add_argument("--dask", default=None, metavar="ADDRESS",
                        help="sklearn, keras-tuner: another Dask scheduler, or 'local' to train here "
                        "(default: the study's)")
    resume.add_argument("--stale-after", type=_seconds, default=None, metavar="SECONDS",
                        help="new heartbeat grace period")
    resume.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="new folder for trial checkpoints (an interrupted trial's own is not moved)")
    # Options that decide what the trials mean: accepted only to check them against the study.
    same = "refuse unless the study used this"
    resume.add_argument("--seed", type=int, default=None, help="refuse unless the study used this seed")
    resume.add_argument("--cv", type=int, default=None, metavar="K",
                        help="refuse unless the study used K folds")
    resume.add_argument("--trainer", default=None, metavar="NAME",
                        help="refuse unless the study's folds were fitted by this trainer")
    resume.add_argument("--backend", default=None, metavar="NAME",
                        help="refuse unless the study's trials train on this Keras backend")
    resume.add_argument("--class-weight", default=None, choices=("balanced",), help=same)
    resume.add_argument("--sample-weight", default=None, metavar="COLUMN", help=same)
    resume.add_argument("--task", default=None, choices=("auto", "binary", "multiclass", "regression"),
                        help="refuse unless the study used this task")
    resume.add_argument("--max-epochs", type=int, default=None, help=same)
    resume.add_argument("--factor", type=int, default=None, help=same)
    _add_halving(resume, check_only=True)
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_isolation(resume)
    _add_storage(resume)

    worker = commands.add_parser(
        "worker", help="join a running study from another process or machine (optuna engine)",
        description="Train trials of an existing Optuna study alongside its other workers, for example "
        "from a second machine sharing a PostgreSQL database, until the study's budget is reached.",
    )
    worker.add_argument("study", help="name of the running study to join")
    worker.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_isolation(worker, in_process=False)
    _add_storage(worker)

    studies = commands.add_parser("studies", help="list studies with trial counts and best values")
    studies.add_argument("--json", action="store_true", help="JSON instead of a table")
    _add_storage(studies)

    trials = commands.add_parser("trials", help="list a study's trials")
    trials.add_argument("study", help="study name")
    trials.add_argument("--state", action="append", default=[],
                        help="only trials in this state (complete, pruned, failed, running); repeatable")
    trials.add_argument("--sort", default="number", help="number (default), value, duration, started")
    trials.add_argument("--desc", action="store_true", help="sort descending")
    trials.add_argument("--limit", type=int, default=None, help="show at most this many trials")
    trials.add_argument("--json", action="store_true", help="JSON with per-epoch curves")
    _add_storage(trials)

    best = commands.add_parser("best", help="show the best trial(s) of a study")
    best.add_argument("study", help="study name")
    best.add_argument("--top", type=int, default=1, help="show this many best trials (default 1)")
    best.add_argument("--json", action="store_true", help="JSON with the per-epoch curves")
    _add_storage(best)

    retrain = commands.add_parser(
        "retrain", help="retrain the best config with callbacks, test it on held-out data, export it",
        description="Train the best trial's config (or --trial N) on the study's train split with early "
        "stopping, learning-rate reduction, a best-only checkpoint, TensorBoard and CSV logs, evaluate it "
        "on the test split the search never saw, and export a self-contained .keras model with a model "
        "card. Output: DIR/model.keras, model.json, checkpoint.keras, training.csv, tensorboard/ "
        "(default DIR: models/STUDY/trial-N-TIME/).")
    retrain.add_argument("study", help="study name")
    retrain.add_argument("--trial", type=int, default=None, metavar="N",
                         help="retrain trial N's config instead of the best trial's")
    retrain.add_argument("--epochs", type=int, default=1000,
                         help="upper bound on epochs; early stopping cuts it short (default 1000)")
    retrain.add_argument("--patience", type=int, default=20,
                         help="early stopping: epochs without improvement before stopping (default 20)")
    retrain.add_argument("--no-restore-best", dest="restore_best", action="store_false",
                         help="keep the last epoch's weights instead of the best epoch's")
    retrain.add_argument("--lr-factor", type=float, default=None,
                         help="ReduceLROnPlateau: multiply the learning rate by this on a plateau (default "
                         "0.5); off for a config with an lr_schedule unless this or --lr-patience is given")
    retrain.add_argument("--lr-patience", type=int, default=None,
                         help="ReduceLROnPlateau: epochs without improvement before reducing the learning "
                         "rate (default 10)")
    retrain.add_argument("--threshold-for", default=None, metavar="CRITERION",
                         help="binary tasks: choose the decision threshold on the validation split for f1, "
                         "youden, recall@P (highest recall with precision >= P) or precision@R (highest "
                         "precision with recall >= R); stored in the card and applied by predict")
    retrain.add_argument("--seeds", type=int, default=1, metavar="K",
                         help="train K times with seeds S..S+K-1, report test mean and std, export the "
                         "seed with the best validation score (default 1)")
    retrain.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    retrain.add_argument("--out", default=None, metavar="DIR",
                         help="output directory (default models/STUDY/trial-N-TIME/); one holding an "
                         "earlier retrain's files is kept, and DIR-2 (DIR-3, ...) written instead")
    retrain.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_storage(retrain)

    predict = commands.add_parser(
        "predict", help="predict the rows of a CSV file with an exported model",
        description="Predict with a model written by `hpsearch retrain`, using only the .keras file and "
        "its model card: class label and per-class probabilities, or the predicted value.")
    predict.add_argument("model", help="model.keras (or the directory holding it and model.json)")
    predict.add_argument("data", help="CSV file with the feature columns (extra columns are ignored)")
    predict.add_argument("--out", default=None, metavar="FILE",
                         help="write the predictions CSV here; a directory gets predictions.csv inside "
                         "(default: standard output)")

    compare = commands.add_parser(
        "compare", help="put studies side by side, whichever engine ran them",
        description="Engine, algorithm, trials by state, epochs and seconds spent, best search score and, "
        "where retrained, the test metrics of the best config. Search scores (validation or CV) and test "
        "scores are not directly comparable.")
    compare.add_argument("studies", nargs="+", metavar="STUDY", help="names of the studies to compare")
    compare.add_argument("--json", action="store_true", help="JSON instead of a table")
    _add_storage(compare)

    plot = commands.add_parser(
        "plot", help="write PNG plots of a study: optimization history, learning curves, retrain curves")
    plot.add_argument("study", help="study name")
    plot.add_argument("--out", default=None, metavar="DIR", help="output directory (default plots/STUDY/)")
    plot.add_argument("--top", type=int, default=5,
                      help="learning curves of this many best trials (default 5)")
    _add_storage(plot)

    serve = commands.add_parser(
        "serve", help="serve the store over HTTP: JSON API and web dashboard, launch and stop studies",
        description="A JSON API (described at /api/openapi.json) and a dashboard of every study of every "
        "engine, with launching, stopping and resuming studies. Binds to loopback by default; any other "
        "--host needs a token. Ctrl-C or SIGTERM stops the server and interrupts the studies it launched "
        "(resumable).")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; a non-loopback address needs a token)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--token", default=None, metavar="T",
                       help="require this token on every request (default: $HPSEARCH_TOKEN, else none)")
    serve.add_argument("--data-dir", default=None, metavar="DIR",
                       help="launches may read data files only from under this directory "
                       "(default: bundled datasets only)")
    _add_storage(serve)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_commands.required = True
    upgrade = db_commands.add_parser("upgrade", help="upgrade the database schema to this version")
    _add_storage(upgrade)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("hpsearch")
    except metadata.PackageNotFoundError:
        return "unknown"
