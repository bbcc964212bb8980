"""PNG plots of a study: optimization history, learning curves of the top trials, the retrain's curves.

matplotlib is imported lazily with the non-interactive Agg backend, so plotting works on a machine
without a display and nothing else in hpsearch pays for the import. No TensorFlow is loaded: curves come
from the trial store and the retrain's CSV log.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpsearch.storage import ModelRecord, Storage, StudyRecord, TrialRecord, TrialState

from ..errors import HpsearchError, NoResultError
from .queries import best_trials

DEFAULT_PLOTS_DIR = "plots"
HISTORY_FILE = "history.png"
CURVES_FILE = "top-trials.png"
RETRAIN_FILE = "retrain.png"


class PlottingUnavailableError(HpsearchError):
    """matplotlib, which plots need, is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlottingUnavailableError("`hpsearch plot` needs matplotlib; install it with "
                                       "`pip install matplotlib`") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(*axes: Any) -> None:
    """Trial numbers and epochs are whole: no 'epoch 1.25' ticks."""
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _better(direction: str):
    return (lambda a, b: a < b) if direction == "minimize" else (lambda a, b: a > b)


def best_so_far(values: Sequence[float | None], direction: str) -> list[float | None]:
    better = _better(direction)
    running: float | None = None
    out: list[float | None] = []
    for value in values:
        if value is not None and math.isfinite(value) and (running is None or better(value, running)):
            running = value
        out.append(running)
    return out


def plot_history(plt: Any, study: StudyRecord, trials: Sequence[TrialRecord], path: Path) -> None:
    """Best-so-far against trial number and against seconds since the study's first trial started."""
    finished = [t for t in trials if t.state is not TrialState.RUNNING]
    complete = [t for t in finished if t.state is TrialState.COMPLETE and t.value is not None]
    start = min(t.started_at for t in trials)
    fig, (by_trial, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)

    numbers = [t.number for t in sorted(finished, key=lambda t: t.number)]
    values = [t.value if t.state is TrialState.COMPLETE else None
              for t in sorted(finished, key=lambda t: t.number)]
    trained = [t for t in complete if not t.copied]
    by_trial.scatter([t.number for t in trained], [t.value for t in trained], s=18, alpha=0.6,
                     label="complete trial")
    copied = [t for t in complete if t.copied]
    if copied:
        by_trial.scatter([t.number for t in copied], [t.value for t in copied], s=28, marker="D",
                         facecolors="none", edgecolors="C2", label="copied (--warm-start)")
    pruned = [t for t in finished if t.state is TrialState.PRUNED and t.value is not None]
    if pruned:
        by_trial.scatter([t.number for t in pruned], [t.value for t in pruned], s=18, marker="x",
                         color="grey", alpha=0.6, label="pruned (at stop)")
    by_trial.step(numbers, best_so_far(values, study.direction), where="post", color="C3",
                  label="best so far")
    _integer_ticks(by_trial)
    by_trial.set_xlabel("trial number")
    by_trial.set_ylabel(study.objective)
    by_trial.set_title("best so far vs trials")
    by_trial.legend(loc="best", fontsize="small")

    by_end = sorted(finished, key=lambda t: t.ended_at or t.started_at)
    seconds = [((t.ended_at or t.started_at) - start).total_seconds() for t in by_end]
    timed = [t.value if t.state is TrialState.COMPLETE else None for t in by_end]
    by_time.scatter([s for s, v in zip(seconds, timed, strict=True) if v is not None],
                    [v for v in timed if v is not None], s=18, alpha=0.6, label="complete trial")
    by_time.step(seconds, best_so_far(timed, study.direction), where="post", color="C3", label="best so far")
    by_time.set_xlabel("seconds since the first trial started")
    by_time.set_ylabel(study.objective)
    by_time.set_title("best so far vs time")
    by_time.legend(loc="best", fontsize="small")
    copied_note = f" ({len(copied)} copied by --warm-start)" if copied else ""
    fig.suptitle(f"study '{study.name}' ({study.engine}/{study.algorithm}): {len(complete)} complete of "
                 f"{len(trials)} trials{copied_note}, {study.direction} {study.objective}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curve(trial: TrialRecord, name: str) -> tuple[list[int], list[float]]:
    values = trial.curves.get(name, [])
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    return [p[0] for p in points], [p[1] for p in points]


def plot_top_trials(plt: Any, study: StudyRecord, top: Sequence[TrialRecord], path: Path) -> None:
    """Per-epoch objective (left) and training/validation loss (right) of the best trials."""
    fig, (objective, loss) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for rank, trial in enumerate(top):
        color = f"C{rank % 10}"
        copied = f", copied from {trial.copied_from}" if trial.copied else ""
        label = f"#{trial.number} ({study.objective}={trial.value:.4g}{copied})"
        objective.plot(*_curve(trial, study.objective), color=color, marker=".", label=label)
        loss.plot(*_curve(trial, "loss"), color=color, linestyle="--", label=f"#{trial.number} loss")
        loss.plot(*_curve(trial, "val_loss"), color=color, label=f"#{trial.number} val_loss")
    _integer_ticks(objective, loss)
    objective.set_xlabel("epoch")
    objective.set_ylabel(study.objective)
    objective.set_title(f"{study.objective} of the {len(top)} best trial(s)")
    objective.legend(loc="best", fontsize="small")
    loss.set_xlabel("epoch")
    loss.set_ylabel("loss")
    loss.set_title("loss (dashed: train, solid: validation)")
    loss.legend(loc="best", fontsize="x-small", ncol=2)
    fig.suptitle(f"study '{study.name}': learning curves of the top trials")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_training_log(path: Path) -> dict[str, list[float]]:
    """Columns of a Keras CSVLogger file as floats (``epoch`` 1-based)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for name, text in row.items():
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = math.nan
            columns.setdefault(name, []).append(value)
    if "epoch" in columns:
        columns["epoch"] = [e + 1 for e in columns["epoch"]]
    return columns


def _training_log(model: ModelRecord) -> Path | None:
    logged = (model.settings or {}).get("training_log")
    candidates = [Path(logged)] if logged else []
    candidates.append(Path(model.path).with_name("training.csv"))
    return next((path for path in candidates if path.is_file()), None)


def plot_retrain(plt: Any, study: StudyRecord, model: ModelRecord, log: dict[str, list[float]],
                 path: Path) -> None:
    """Loss, objective and learning rate per epoch of a retrain, with its best epoch marked."""
    base = study.objective.removeprefix("val_")
    epochs = log.get("epoch") or list(range(1, len(next(iter(log.values()), [])) + 1))
    has_lr = "learning_rate" in log
    fig, axes = plt.subplots(1, 3 if has_lr else 2, figsize=(15 if has_lr else 12, 4.5),
                             constrained_layout=True)
    best_epoch = (model.settings or {}).get("best_epoch")
    for axis, name in zip(axes[:2], ("loss", base), strict=True):
        if name in log:
            axis.plot(epochs, log[name], label=f"train {name}")
        if f"val_{name}" in log:
            axis.plot(epochs, log[f"val_{name}"], label=f"validation {name}")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        _integer_ticks(axis)
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.set_title(name)
        axis.legend(loc="best", fontsize="small")
    if has_lr:
        axes[2].plot(epochs, log["learning_rate"], color="C2")
        axes[2].set_yscale("log")
        _integer_ticks(axes[2])
        axes[2].set_xlabel("epoch")
        axes[2].set_title("learning rate")
    test = ", ".join(f"{k}={v:.4g}" for k, v in model.test_metrics.items() if isinstance(v, int | float))
    fig.suptitle(f"retrain of trial #{model.trial_number} ({study.name}): {model.epochs_run} epochs, "
                 f"stop: {model.stop_reason}; test {test}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_study(
    storage: Storage, study: StudyRecord, out_dir: str | None = None, *, top: int = 5
) -> list[Path]:
    """Write the study's PNG files into ``out_dir`` (default ``plots/<study>/``); return their paths."""
    from .export import safe_directory_name

    trials = storage.list_trials(study.id, with_epochs=False)
    if not trials:
        raise NoResultError(f"study '{study.name}' has no trials yet; nothing to plot")
    best = best_trials(storage, study, top)  # raises NoResultError without a completed trial
    numbers = {trial.number for trial in best}
    with_curves = [t for t in storage.list_trials(study.id, states=[TrialState.COMPLETE], with_epochs=True)
                   if t.number in numbers]
    top_trials = sorted(with_curves, key=lambda t: [b.number for b in best].index(t.number))

    plt = _pyplot()
    directory = Path(out_dir) if out_dir else Path(DEFAULT_PLOTS_DIR) / safe_directory_name(study.name)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / HISTORY_FILE, directory / CURVES_FILE]
    plot_history(plt, study, trials, written[0])
    plot_top_trials(plt, study, top_trials, written[1])
    models = storage.list_models(study.id)
    if models:
        log_path = _training_log(models[-1])
        if log_path is not None:
            written.append(directory / RETRAIN_FILE)
            plot_retrain(plt, study, models[-1], read_training_log(log_path), written[-1])
    return written
