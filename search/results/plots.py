"""PNG plots of a study: optimization history, learning curves of the top trials, the retrain's curves.

matplotlib is imported lazily, and figures are made as ``matplotlib.figure.Figure`` objects without pyplot:
plotting works on a machine without a display, a notebook's own backend is left alone (a returned figure
shows inline), and nothing else in hpsearch pays for the import. No TensorFlow is loaded: curves come
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


def _figure(width: float) -> Any:
    """A new figure of ``width`` inches, 4.5 high, outside pyplot (nothing to close, no backend chosen)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlottingUnavailableError("plots need matplotlib; install it with "
                                       "`pip install matplotlib`") from None
    return Figure(figsize=(width, 4.5), layout="constrained")


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


def history_figure(study: StudyRecord, trials: Sequence[TrialRecord]) -> Any:
    """Best-so-far against trial number and against seconds since the study's first trial started.

    Args:
        study: the study.
        trials: its trials (at least one).

    Returns:
        The matplotlib ``Figure``.
    """
    finished = [t for t in trials if t.state is not TrialState.RUNNING]
    complete = [t for t in finished if t.state is TrialState.COMPLETE and t.value is not None]
    start = min(t.started_at for t in trials)
    fig = _figure(12)
    by_trial, by_time = fig.subplots(1, 2)

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
    return fig


def _curve(trial: TrialRecord, name: str) -> tuple[list[int], list[float]]:
    values = trial.curves.get(name, [])
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    return [p[0] for p in points], [p[1] for p in points]


def top_trials_figure(study: StudyRecord, top: Sequence[TrialRecord]) -> Any:
    """Per-epoch objective (left) and training/validation loss (right) of the best trials.

    Args:
        study: the study.
        top: its best trials, with their curves loaded.

    Returns:
        The matplotlib ``Figure``.
    """
    fig = _figure(12)
    objective, loss = fig.subplots(1, 2)
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
    return fig


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


def retrain_figure(study: StudyRecord, model: ModelRecord, log: dict[str, list[float]]) -> Any:
    """Loss, objective and learning rate per epoch of a retrain, with its best epoch marked.

    Args:
        study: the study.
        model: the retrained model's record.
        log: its training log (``read_training_log``).

    Returns:
        The matplotlib ``Figure``.
    """
    base = study.objective.removeprefix("val_")
    epochs = log.get("epoch") or list(range(1, len(next(iter(log.values()), [])) + 1))
    has_lr = "learning_rate" in log
    fig = _figure(15 if has_lr else 12)
    axes = fig.subplots(1, 3 if has_lr else 2)
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
    return fig


FIGURES = ("history", "top-trials", "retrain")


def study_figures(
    storage: Storage, study: StudyRecord, *, top: int = 5, which: Sequence[str] = FIGURES
) -> dict[str, Any]:
    """The study's figures by name (``history``, ``top-trials``, ``retrain``), as ``hpsearch plot`` draws
    them; ``retrain`` only where the study has a retrained model with its training log.

    Args:
        storage: the trial store.
        study: the study.
        top: learning curves of this many best trials.
        which: the figures wanted, of :data:`FIGURES`.

    Returns:
        Each figure drawn, by name (a matplotlib ``Figure``).

    Raises:
        NoResultError: the study has no trials, or no completed trial.
        PlottingUnavailableError: matplotlib is not installed.
    """
    trials = storage.list_trials(study.id, with_epochs=False)
    if not trials:
        raise NoResultError(f"study '{study.name}' has no trials yet; nothing to plot")
    best = best_trials(storage, study, top)  # raises NoResultError without a completed trial
    figures: dict[str, Any] = {}
    if "history" in which:
        figures["history"] = history_figure(study, trials)
    if "top-trials" in which:
        numbers = [trial.number for trial in best]
        with_curves = [t for t in storage.list_trials(study.id, states=[TrialState.COMPLETE],
                                                      with_epochs=True) if t.number in numbers]
        figures["top-trials"] = top_trials_figure(study, sorted(with_curves,
                                                                key=lambda t: numbers.index(t.number)))
    models = storage.list_models(study.id)
    if "retrain" in which and models:
        log_path = _training_log(models[-1])
        if log_path is not None:
            figures["retrain"] = retrain_figure(study, models[-1], read_training_log(log_path))
    return figures


def plot_study(
    storage: Storage, study: StudyRecord, out_dir: str | None = None, *, top: int = 5
) -> list[Path]:
    """Write the study's PNG files into ``out_dir`` (default ``plots/<study>/``); return their paths."""
    from .export import safe_directory_name

    figures = study_figures(storage, study, top=top)
    directory = Path(out_dir) if out_dir else Path(DEFAULT_PLOTS_DIR) / safe_directory_name(study.name)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"history": HISTORY_FILE, "top-trials": CURVES_FILE, "retrain": RETRAIN_FILE}
    written = []
    for name, figure in figures.items():
        written.append(directory / files[name])
        figure.savefig(written[-1], dpi=110)
    return written
