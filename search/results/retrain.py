"""Retraining a study's best configuration with callbacks, evaluating it on the test split, exporting it.

``retrain_study`` takes the best trial's config (or trial N), trains it on the study's own train split
with early stopping, learning-rate reduction, a best-only checkpoint, TensorBoard and CSV logs and
``TerminateOnNaN``, evaluates it on the held-out test split (which the search never saw), exports a
self-contained ``.keras`` file with a model card (see :mod:`hpsearch.results.export`), and records the model
in the
study's database.

With ``seeds > 1`` the same config is trained once per seed; the test metrics are reported as mean and
standard deviation across seeds, and the seed with the best *validation* score is exported. Choosing by
the test score would turn the test split into one more validation split and bias the reported score.

Layout of one retrain (default directory ``models/<study>/trial-<N>-<UTC time>/``)::

    model.keras        the exported model, preprocessing inside
    model.json         its model card
    checkpoint.keras   best epoch of the trained network (takes preprocessed input)   } in seed-<S>/
    training.csv       every epoch: metrics, validation metrics, learning rate        } per seed when
    tensorboard/       TensorBoard event files (train/, validation/)                  } --seeds > 1

A directory (``--out``) already holding an earlier retrain's files is left alone: the retrain writes to
``DIR-2`` (``DIR-3``, ...) instead and says so, because the earlier model's database record and card point
at those files by path and sha256.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hpsearch.storage import (
    ModelRecord,
    Storage,
    StudyRecord,
    TrialRecord,
    TrialState,
    open_storage,
)

from .. import interrupts
from ..errors import HpsearchError, UsageError
from ..names import command_line, unused_directory
from ..seeds import retrain_seeds
from .export import (
    CARD_FILE,
    CARD_FORMAT,
    CARD_VERSION,
    MODEL_FILE,
    export_model,
    format_metrics,
    input_format,
    output_format,
    safe_directory_name,
)
from .thresholds import parse_criterion, threshold_block, threshold_metrics

if TYPE_CHECKING:
    from ..data import Dataset

DEFAULT_EPOCHS = 1000
DEFAULT_PATIENCE = 20
DEFAULT_LR_FACTOR = 0.5
DEFAULT_LR_PATIENCE = 10
DEFAULT_MODELS_DIR = "models"

#: Why training stopped, as stored in the database and the card.
STOP_EARLY = "early_stopping"
STOP_MAX_EPOCHS = "max_epochs"
STOP_NON_FINITE = "non_finite_loss"

CHECKPOINT_FILE = "checkpoint.keras"
TRAINING_LOG = "training.csv"
TENSORBOARD_DIR = "tensorboard"
#: Files a retrain writes into its directory (``seed-<S>/`` folders hold the others of several seeds).
RETRAIN_FILES = (MODEL_FILE, CARD_FILE, CHECKPOINT_FILE, TRAINING_LOG, TENSORBOARD_DIR)


class RetrainFailedError(HpsearchError):
    """Every retrain run diverged: nothing is exported or recorded."""


@dataclass
class RetrainOptions:
    """What ``hpsearch retrain`` was asked to do; see the CLI help for each field."""

    trial: int | None = None
    epochs: int = DEFAULT_EPOCHS
    patience: int = DEFAULT_PATIENCE
    restore_best: bool = True
    lr_factor: float = DEFAULT_LR_FACTOR
    lr_patience: int = DEFAULT_LR_PATIENCE
    #: ReduceLROnPlateau: None (default) runs it unless the config has an ``lr_schedule``; True runs it
    #: beside the schedule (``--lr-factor``/``--lr-patience`` given), False never.
    reduce_lr: bool | None = None
    #: ``--threshold-for``: how to choose the binary decision threshold on the validation split.
    threshold_for: str | None = None
    seeds: int = 1
    seed: int = 0
    out: str | None = None
    progress: bool = True

    def check(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, but got {self.epochs}")
        if self.patience < 0:
            raise UsageError(f"--patience must be 0 or more epochs, but got {self.patience}")
        if not 0 < self.lr_factor < 1:
            raise UsageError(f"--lr-factor must be strictly between 0 and 1, but got {self.lr_factor}")
        if self.lr_patience < 0:
            raise UsageError(f"--lr-patience must be 0 or more epochs, but got {self.lr_patience}")
        if self.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, but got {self.seeds}")
        if self.threshold_for is not None:
            from .thresholds import parse_criterion

            parse_criterion(self.threshold_for)

    def plateau(self, config: Mapping[str, Any]) -> bool:
        """Whether ReduceLROnPlateau runs: a learning-rate schedule already decides the rate, so by
        default the plateau callback stays off beside one."""
        if self.reduce_lr is not None:
            return self.reduce_lr
        return config.get("lr_schedule", "none") == "none"


@dataclass
class SeedRun:
    """One training run of the config with one seed."""

    seed: int
    directory: Path
    epochs_run: int
    best_epoch: int | None  # 1-based; None when no epoch had a finite monitored value
    stop_reason: str
    stop_detail: str
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    duration_s: float
    weights: list[Any] = field(repr=False, default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason, "stop_detail": self.stop_detail,
            "val_metrics": self.val_metrics, "test_metrics": self.test_metrics,
            "duration_s": round(self.duration_s, 3), "directory": str(self.directory),
        }


@dataclass
class RetrainResult:
    study: StudyRecord
    trial: TrialRecord
    directory: Path
    model_path: Path
    card_path: Path
    chosen: SeedRun
    runs: list[SeedRun]
    test_mean: dict[str, float]
    test_std: dict[str, float]
    record: ModelRecord


def monitored_metric(objective: str) -> str:
    """Retraining watches the objective on the validation split, whatever split the search scored."""
    return f"val_{objective.removeprefix('val_')}"


def spread(values_by_run: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of each metric across runs."""
    names = [name for name in values_by_run[0] if all(name in run for run in values_by_run)]
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for name in names:
        values = [float(run[name]) for run in values_by_run]
        mean[name] = sum(values) / len(values)
        if len(values) > 1:
            std[name] = math.sqrt(sum((v - mean[name]) ** 2 for v in values) / (len(values) - 1))
        else:
            std[name] = 0.0
    return mean, std


def default_directory(study: StudyRecord, trial_number: int, root: str = DEFAULT_MODELS_DIR) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / safe_directory_name(study.name) / f"trial-{trial_number}-{stamp}"
    candidate, suffix = base, 2
    while candidate.exists():  # two retrains in the same second must not share a directory
        candidate, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    return candidate


def _pick_trial(storage: Storage, study: StudyRecord, number: int | None) -> TrialRecord:
    from .queries import best_trials

    if number is None:
        return best_trials(storage, study, 1)[0]
    trial = storage.get_trial(study.id, number)
    if trial.state is TrialState.RUNNING:
        raise UsageError(f"trial #{number} of study '{study.name}' is still running; retrain it once it ends")
    return trial


def _load_dataset(study: StudyRecord, storage: Storage) -> Dataset:
    from ..errors import StudyMismatchError
    from ..study_inputs import load_study_dataset

    try:
        return load_study_dataset(study, storage)
    except StudyMismatchError as error:
        # The shared check speaks of resuming; say what this command was doing.
        raise StudyMismatchError(str(error).replace("cannot resume", "cannot retrain", 1)) from None


def _callback_settings(
    options: RetrainOptions, monitor: str, mode: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    plateau = options.plateau(config)
    return {
        "monitor": monitor,
        "mode": mode,
        "epochs": options.epochs,
        "early_stopping": {"patience": options.patience, "restore_best_weights": options.restore_best},
        "lr_schedule": config.get("lr_schedule", "none"),
        "reduce_lr_on_plateau": (
            {"factor": options.lr_factor, "patience": options.lr_patience} if plateau else None
        ),
        "model_checkpoint": {"file": CHECKPOINT_FILE, "save_best_only": True},
        "tensorboard": {"log_dir": TENSORBOARD_DIR},
        "csv_logger": {"file": TRAINING_LOG},
        "terminate_on_nan": True,
    }


#: Seconds between two progress lines of a retrain logged to a file (see hpsearch.progress).
LOG_EVERY_S = 10.0


def _progress_callback(seed: int, epochs: int, monitor: str, enabled: bool) -> list[Any]:
    if not enabled:
        return []
    import keras

    class _EpochBar(keras.callbacks.Callback):
        """A tqdm bar on a terminal; in a log, a line every ``LOG_EVERY_S`` seconds and one at the end."""

        def on_train_begin(self, logs: Any = None) -> None:
            self.bar = None
            self.line = f"seed {seed}: epoch 0/{epochs}"
            self.logged_at = time.monotonic()
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=epochs, unit="epoch", desc=f"seed {seed}", file=sys.stderr,
                                dynamic_ncols=True, leave=False)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = (logs or {}).get(monitor)
            shown = "" if value is None else f", {monitor} {float(value):.4g}"
            self.line = f"seed {seed}: epoch {epoch + 1}/{epochs}{shown}"
            if self.bar is not None:
                if value is not None:
                    self.bar.set_postfix_str(f"{monitor}={float(value):.4g}", refresh=False)
                self.bar.update(1)
            elif time.monotonic() - self.logged_at >= LOG_EVERY_S:
                self._log()

        def on_train_end(self, logs: Any = None) -> None:
            if self.bar is not None:
                self.bar.close()
            else:
                self._log()

        def _log(self) -> None:
            print(self.line, file=sys.stderr, flush=True)
            self.logged_at = time.monotonic()

    return [_EpochBar()]


def _train_one(
    config: Mapping[str, Any],
    dataset: Dataset,
    *,
    seed: int,
    directory: Path,
    options: RetrainOptions,
    monitor: str,
    mode: str,
) -> SeedRun:
    import keras
    from hpsearch.spaces import build_model
    from hpsearch.spaces.schedules import LearningRateCallback

    from ..training.fit import seed_everything, task_info

    directory.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    model = build_model(config, task_info(dataset))
    stopper = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=options.patience, restore_best_weights=options.restore_best,
    )
    plateau = []
    if options.plateau(config):
        plateau.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=options.lr_factor,
                                                         patience=options.lr_patience))
    callbacks = [
        # First: it sets the epoch's rate (lr_schedule) and logs the rate trained with as learning_rate.
        LearningRateCallback(config),
        keras.callbacks.TerminateOnNaN(),
        stopper,
        *plateau,
        keras.callbacks.ModelCheckpoint(str(directory / CHECKPOINT_FILE), monitor=monitor, mode=mode,
                                        save_best_only=True),
        keras.callbacks.CSVLogger(str(directory / TRAINING_LOG)),
        # No graph: for an MLP it says nothing the card does not, and writing it costs start-up time.
        keras.callbacks.TensorBoard(log_dir=str(directory / TENSORBOARD_DIR), write_graph=False),
        *_progress_callback(seed, options.epochs, monitor, options.progress),
        # Last, once the epoch is logged: a Ctrl-C that Python dropped inside a finalizer
        # (hpsearch.interrupts).
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: interrupts.raise_if_requested()),
    ]
    started = time.monotonic()
    try:
        history = model.fit(
            dataset.x_train, dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            epochs=options.epochs,
            batch_size=int(config["batch_size"]),
            class_weight=dataset.class_weight,
            sample_weight=dataset.w_train,  # weights the training loss; validation scores stay unweighted
            callbacks=callbacks,
            verbose=0,
        )
        curves = {name: [float(v) for v in values] for name, values in history.history.items()}
        epochs_run = len(curves.get("loss", []))
        losses = curves.get("loss", [])
        if losses and not math.isfinite(losses[-1]):
            reason, detail = STOP_NON_FINITE, f"loss became {losses[-1]} at epoch {epochs_run}"
        elif stopper.stopped_epoch > 0:
            reason = STOP_EARLY
            detail = (f"stopped early at epoch {stopper.stopped_epoch + 1}: no {monitor} improvement in "
                      f"{options.patience} epochs")
        else:
            reason, detail = STOP_MAX_EPOCHS, f"ran all {epochs_run} epochs"
        best_epoch = _best_epoch(curves.get(monitor, []), mode)
        # After EarlyStopping restored the best weights (when asked): these are the weights exported.
        val = _evaluate(model, dataset.x_val, dataset.y_val)
        test = _evaluate(model, dataset.x_test, dataset.y_test)
        weights = model.get_weights()
    finally:
        keras.backend.clear_session()
    return SeedRun(seed=seed, directory=directory, epochs_run=epochs_run, best_epoch=best_epoch,
                   stop_reason=reason, stop_detail=detail, val_metrics=val, test_metrics=test,
                   duration_s=time.monotonic() - started, weights=weights)


def _best_epoch(values: Sequence[float], mode: str) -> int | None:
    finite = [(value, epoch) for epoch, value in enumerate(values) if math.isfinite(value)]
    if not finite:
        return None
    pick = min if mode == "min" else max
    return pick(finite, key=lambda pair: pair[0])[1] + 1


def _evaluate(model: Any, x: Any, y: Any) -> dict[str, float]:
    results = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=1024)
    return {str(name): float(value) for name, value in results.items()}


def _choose(runs: Sequence[SeedRun], metric: str, direction: str) -> SeedRun:
    """The run with the best validation score (first seed on ties); runs that diverged come last."""
    def key(run: SeedRun) -> float:
        value = run.val_metrics.get(metric, math.nan)
        if not math.isfinite(value):
            return math.inf
        return value if direction == "minimize" else -value

    return min(runs, key=key)


def _finite(metrics: Mapping[str, float]) -> bool:
    return bool(metrics) and all(math.isfinite(v) for v in metrics.values())


def retrain_study(
    name: str,
    storage_url: str,
    options: RetrainOptions,
    *,
    out: TextIO = sys.stdout,
) -> RetrainResult:
    """Retrain, evaluate on test, export and record one study's config; see the module docstring."""
    from hpsearch.spaces import resolve_config

    from ..runtime.backends import study_backend, use_backend_here
    from ..settings import StudySettings
    from ..study_inputs import study_space
    from ..study_settings import package_versions
    from ..training.reproducibility import study_reproducibility

    options.check()
    storage = open_storage(storage_url, create=False)
    study = storage.get_study(name)
    if study.dataset.get("kind") == "none":  # hpsearch.training.function_fit.NO_DATA_KIND
        raise UsageError(f"study '{name}' trained its trials with training function "
                         f"{study.dataset.get('train')}, so there is no Keras model of hpsearch's to retrain "
                         f"or export; call that function with the best parameters (`hpsearch best {name}`)")
    # The best model is retrained as its trials trained: on the study's backend.
    study_settings = StudySettings.from_record(study.settings)
    use_backend_here(study_settings, why="run `hpsearch retrain` in a new process")
    backend = study_backend(study_settings)
    trial = _pick_trial(storage, study, options.trial)
    config = resolve_config(study_space(study), trial.params)
    dataset = _load_dataset(study, storage)
    monitor = monitored_metric(study.objective)
    mode = "min" if study.direction == "minimize" else "max"
    directory = Path(options.out).expanduser() if options.out else default_directory(study, trial.number)
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {options.out}: is a file; retrain writes a directory of files there")
    # An earlier retrain's files there are what its model record (path, sha256) and card point to: never
    # overwrite them; write beside them, in DIR-2, DIR-3, ..., as two retrains in one second do.
    wanted, directory = directory, unused_directory(directory, RETRAIN_FILES)
    seeds = retrain_seeds(options.seed, options.seeds)
    settings = _callback_settings(options, monitor, mode, config)
    criterion = None
    if options.threshold_for is not None:
        criterion = parse_criterion(options.threshold_for)
        if dataset.task != "binary":
            raise UsageError(f"--threshold-for needs a binary task, but study '{study.name}' is "
                             f"{dataset.task}; only a binary model has a decision threshold")

    params = ", ".join(f"{key}={value}" for key, value in trial.params.items())
    print(f"retraining trial #{trial.number} of study '{study.name}' ({params or 'no tuned parameters'})",
          file=out)
    print(f"data {dataset.summary()}; the test split was never seen by the search", file=out)
    if directory != wanted:
        print(f"{wanted} holds an earlier retrain's files; writing to {directory} instead", file=out)
    restore = "restoring the best epoch" if options.restore_best else "keeping the last epoch"
    rates = []
    if config.get("lr_schedule", "none") != "none":
        rates.append(f"learning rate schedule {config['lr_schedule']}")
    if options.plateau(config):
        rates.append(f"learning rate x{options.lr_factor:g} after {options.lr_patience} flat epochs")
    print(f"at most {options.epochs} epochs, early stopping on {monitor} (patience {options.patience}, "
          f"{restore}), {' and '.join(rates) or 'constant learning rate'}", file=out)

    runs: list[SeedRun] = []
    for seed in seeds:
        run_dir = directory if len(seeds) == 1 else directory / f"seed-{seed}"
        run = _train_one(config, dataset, seed=seed, directory=run_dir, options=options, monitor=monitor,
                         mode=mode)
        runs.append(run)
        best = f", best epoch {run.best_epoch}" if run.best_epoch else ""
        print(f"seed {seed}: {run.stop_detail}{best}; test {format_metrics(run.test_metrics)} "
              f"({run.duration_s:.1f} s)", file=out)

    usable = [run for run in runs if _finite(run.test_metrics) and _finite(run.val_metrics)]
    if not usable:
        raise RetrainFailedError(
            f"retraining trial #{trial.number} of study '{study.name}' diverged with every seed "
            f"({runs[0].stop_detail}); nothing was exported. Try another trial (--trial) or fewer epochs"
        )
    test_mean, test_std = spread([run.test_metrics for run in usable])
    objective_metric = study.objective.removeprefix("val_")
    chosen = _choose(usable, objective_metric, study.direction)
    if len(runs) > 1:
        listed = ", ".join(f"{name} {test_mean[name]:.4g} ± {test_std[name]:.2g}" for name in test_mean)
        print(f"across {len(usable)} seeds (mean ± std): test {listed}", file=out)
        if len(usable) < len(runs):
            print(f"{len(runs) - len(usable)} seed(s) diverged and are left out of the summary", file=out)
        print(f"exporting seed {chosen.seed}: best validation {objective_metric} "
              f"({chosen.val_metrics.get(objective_metric, math.nan):.4g}); chosen on validation, not test",
              file=out)

    seeds_block = None
    if len(runs) > 1:
        seeds_block = {
            "seeds": seeds, "chosen": chosen.seed, "chosen_by": f"validation {objective_metric}",
            "test_mean": test_mean, "test_std": test_std, "std": "sample standard deviation (ddof=1)",
            "runs": [run.summary() for run in runs],
        }
    network = _rebuild(config, dataset, chosen.weights)
    threshold = None
    if criterion is not None:
        threshold = threshold_block(network, dataset, criterion)
        choice = threshold["test"]
        print(f"threshold {threshold['value']:.4g} ({threshold['chosen_by']}, chosen on validation"
              f"{'' if threshold['reached'] else '; not reached, kept 0.5'}): test "
              f"{format_metrics(choice)}; at 0.5: {format_metrics(threshold['test_at_0.5'])}", file=out)
    relative = chosen.directory.relative_to(directory)
    files = {
        "model": MODEL_FILE,
        "checkpoint": str(relative / CHECKPOINT_FILE),
        "training_log": str(relative / TRAINING_LOG),
        "tensorboard": str(relative / TENSORBOARD_DIR),
    }
    preprocessing = dataset.preprocessor.to_dict()
    card = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "study": {"name": study.name, "engine": study.engine, "algorithm": study.algorithm,
                  "objective": study.objective, "direction": study.direction},
        "trial": {"number": trial.number, "state": trial.state.value, "value": trial.value,
                  "params": trial.params},
        "config": config,
        "data": {
            "reference": {k: v for k, v in study.dataset.items() if k not in ("fingerprint", "summary")},
            "fingerprint": study.dataset.get("fingerprint"),
            "summary": dataset.summary(),
            "rows": {"train": len(dataset.y_train), "validation": len(dataset.y_val),
                     "test": len(dataset.y_test)},
        },
        "input": input_format(preprocessing),
        "output": output_format(dataset.task, dataset.class_names,
                                threshold["value"] if threshold else 0.5, _target_scale(dataset)),
        "preprocessing": preprocessing,
        "training": {
            "seed": chosen.seed,
            "callbacks": settings,
            "epochs_run": chosen.epochs_run,
            "best_epoch": chosen.best_epoch,
            "stop_reason": chosen.stop_reason,
            "stop_detail": chosen.stop_detail,
            "duration_s": round(chosen.duration_s, 3),
            "class_weight": dataset.class_weight,
            "sample_weight_column": dataset.reference.get("sample_weight"),
        },
        "validation_metrics": chosen.val_metrics,
        "test_metrics": chosen.test_metrics,
        "threshold": threshold,
        "seeds": seeds_block,
        "files": files,
        "versions": package_versions(backend),
        # What the search that chose this configuration needs to be rerun as it ran (docs/resume.md).
        "reproducibility": study_reproducibility(study),
    }
    model_path = directory / MODEL_FILE
    card_path, sha = export_model(network, preprocessing, model_path, card)

    record = storage.add_model(
        study.id,
        trial_number=trial.number,
        path=str(model_path),
        sha256=sha,
        test_metrics={**chosen.test_metrics, **threshold_metrics(threshold)},
        settings={
            "callbacks": settings,
            "seed": chosen.seed,
            "seeds": seeds_block and {k: v for k, v in seeds_block.items() if k != "runs"},
            "best_epoch": chosen.best_epoch,
            "stop_detail": chosen.stop_detail,
            "card": str(card_path),
            "training_log": str(directory / files["training_log"]),
            "tensorboard": str(directory / files["tensorboard"]),
        },
        epochs_run=chosen.epochs_run,
        stop_reason=chosen.stop_reason,
    )
    print(f"exported {model_path} (sha256 {sha[:12]}), card {card_path.name}", file=out)
    # With several seeds, the parent directory shows every seed's run side by side in TensorBoard.
    board = directory / files["tensorboard"] if len(runs) == 1 else directory
    print(f"logs: {directory / files['training_log']}; {command_line('tensorboard', '--logdir', board)}",
          file=out)
    print(f"predict with: {command_line('hpsearch', 'predict', model_path, 'DATA.csv')}", file=out)
    return RetrainResult(study=study, trial=trial, directory=directory, model_path=model_path,
                         card_path=card_path, chosen=chosen, runs=runs, test_mean=test_mean,
                         test_std=test_std, record=record)


def _target_scale(dataset: Dataset) -> tuple[float, float] | None:
    from ..training.fit import task_info

    if dataset.task != "regression":
        return None
    task = task_info(dataset)
    return task.target_mean, task.target_std


def _rebuild(config: Mapping[str, Any], dataset: Dataset, weights: list[Any]) -> Any:
    """The chosen run's network, rebuilt from its config and weights (sessions were cleared since)."""
    from hpsearch.spaces import build_model

    from ..training.fit import task_info

    network = build_model(config, task_info(dataset))
    network.set_weights(weights)
    return network
