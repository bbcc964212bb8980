"""Listings of studies and trials, as plain dicts for ``--json`` and as aligned text tables.

Imports only storage: these answer without loading TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from hpsearch.storage import ModelRecord, Storage, StudyRecord, StudySummary, TrialRecord, TrialState

from ..errors import NoResultError, UsageError
from ..settings import StudySettings
from ..training.reproducibility import ENVIRONMENT_SETTING, study_reproducibility

SORT_KEYS = ("number", "value", "duration", "started")


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN/inf become null, datetimes ISO strings, enums their value."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, TrialState):
        return value.value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def study_dict(summary: StudySummary) -> dict[str, Any]:
    study = summary.study
    return json_safe(
        {
            "name": study.name,
            "engine": study.engine,
            "algorithm": study.algorithm,
            "objective": study.objective,
            "direction": study.direction,
            "data": study.dataset.get("source"),
            # What the study runs with (options a resume changed included); engine state left out.
            "settings": {key: value for key, value in study.settings.items()
                         if not key.endswith("_state") and key != ENVIRONMENT_SETTING},
            # What a rerun must match to reproduce the trials (docs/resume.md: Reproducibility).
            "reproducibility": study_reproducibility(study),
            "trials": summary.n_trials,
            # Of ``trials``, those copied from other studies by --warm-start (not trained here).
            "copied": summary.copied,
            "states": {state.value: summary.counts.get(state, 0) for state in TrialState},
            "best_value": summary.best_value,
            "epochs_total": summary.epochs_total,
            "seconds_total": summary.seconds_total,
            "created_at": study.created_at,
            "updated_at": study.updated_at,
        }
    )


def trial_dict(trial: TrialRecord, *, curves: bool = True) -> dict[str, Any]:
    data = {
        "number": trial.number,
        "state": trial.state,
        "value": trial.value,
        "params": trial.params,
        "metrics": trial.metrics,
        "epochs_run": trial.epochs_run,
        "duration_s": trial.duration_s,
        "started_at": trial.started_at,
        "ended_at": trial.ended_at,
        "error": trial.error,
        "interrupted": trial.interrupted,
        "retry_of": trial.retry_of,
        "parent_number": trial.parent_number,
        # A --warm-start copy: the study and trial number it was copied from (null: trained here).
        "copied_from": (None if not trial.copied
                        else {"study": trial.copied_from_study, "number": trial.copied_from_number}),
        "engine_trial_id": trial.engine_trial_id,
        "worker": trial.worker,
        "peak_memory_mb": trial.peak_memory_mb,
    }
    if curves:
        data["curves"] = trial.curves
    return json_safe(data)


def list_trials(
    storage: Storage,
    study: StudyRecord,
    *,
    states: Sequence[str] = (),
    sort: str = "number",
    descending: bool = False,
    limit: int | None = None,
    with_epochs: bool = True,
) -> list[TrialRecord]:
    """A study's trials as ``hpsearch trials`` lists them.

    Args:
        storage: the trial store.
        study: the study.
        states: state names (any case), repeats allowed; none: every state.
        sort: one of :data:`SORT_KEYS`.
        descending: reverse the order.
        limit: at most this many trials.
        with_epochs: also load the per-epoch curves.

    Returns:
        Each matching trial once.

    Raises:
        UsageError: an unknown state or sort key, or a limit below 1.
    """
    if sort not in SORT_KEYS:
        raise UsageError(f"--sort must be one of {', '.join(SORT_KEYS)}, but got '{sort}'")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, but got {limit}")
    wanted: list[TrialState] = []
    for state in states:
        try:
            wanted.append(TrialState(state.upper()))
        except ValueError:
            accepted = ", ".join(s.value.lower() for s in TrialState)
            raise UsageError(f"--state must be one of {accepted}, but got '{state}'") from None
    return storage.list_trials(
        # `--state complete --state COMPLETE` asks for one state: each trial is listed once.
        study.id, states=list(dict.fromkeys(wanted)) or None, order=sort, descending=descending, limit=limit,
        with_epochs=with_epochs,
    )


def best_trials(storage: Storage, study: StudyRecord, top: int = 1) -> list[TrialRecord]:
    if top < 1:
        raise UsageError(f"--top must be at least 1, but got {top}")
    best = storage.best_trials(study.id, top)
    if not best:
        counts = storage.count_trials(study.id)
        total = sum(counts.values())
        if total == 0:
            raise NoResultError(f"study '{study.name}' has no trials yet; run or resume it first")
        failed = counts[TrialState.FAILED]
        raise NoResultError(
            f"study '{study.name}' has no completed trial ({total} trials: {failed} failed, "
            f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.RUNNING]} running)"
        )
    return best


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[format_value(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def studies_table(summaries: Sequence[StudySummary]) -> str:
    rows = [
        (
            s.study.name,
            s.study.engine,
            s.study.algorithm,
            f"{s.study.objective} ({'min' if s.study.direction == 'minimize' else 'max'})",
            f"{s.n_trials} ({s.copied} copied)" if s.copied else s.n_trials,
            s.counts[TrialState.COMPLETE],
            s.counts[TrialState.PRUNED],
            s.counts[TrialState.FAILED],
            s.counts[TrialState.RUNNING],
            s.best_value,
            s.study.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
        for s in summaries
    ]
    headers = ("study", "engine", "algorithm", "objective", "trials", "complete", "pruned", "failed",
               "running", "best", "updated")
    return table(headers, rows)


def fold_scores(metrics: dict[str, Any]) -> list[float]:
    """A cross-validated trial's per-fold scores (``split{k}_test_score``, as in ``cv_results_``), in
    fold order; empty for trials scored on one validation split."""
    folds = sorted(
        (int(name[len("split"):-len("_test_score")]), value)
        for name, value in metrics.items()
        if name.startswith("split") and name.endswith("_test_score") and name[5:-11].isdigit()
    )
    return [value for _, value in folds]


def cv_text(metrics: dict[str, Any]) -> str:
    """``0.875 0.775 0.725 (std 0.062)``: the fold scores and their spread, for tables and ``best``."""
    scores = fold_scores(metrics)
    if not scores:
        return ""
    text = " ".join(format_value(score) for score in scores)
    spread = metrics.get("std_test_score")
    return text if spread is None else f"{text} (std {format_value(spread)})"


def continued_text(trial: TrialRecord, by_number: Mapping[int, TrialRecord]) -> str:
    """``#3, 9 in all``: the trial a Hyperband round continued, and the epochs its configuration trained
    over the chain of rounds (as far as the listed trials show it)."""
    if trial.parent_number is None:
        return ""
    total, parent = trial.epochs_run, by_number.get(trial.parent_number)
    while parent is not None:
        total += parent.epochs_run
        parent = by_number.get(parent.parent_number) if parent.parent_number is not None else None
    return f"#{trial.parent_number}, {total} in all"


def trials_table(trials: Sequence[TrialRecord]) -> str:
    cross_validated = any(fold_scores(t.metrics or {}) for t in trials)
    continued = any(t.parent_number is not None for t in trials)
    copied = any(t.copied for t in trials)
    by_number = {t.number: t for t in trials}
    rows = [
        (
            t.number,
            t.state.value.lower(),
            *((t.copied_from or "",) if copied else ()),
            t.value,
            *((cv_text(t.metrics or {}),) if cross_validated else ()),
            t.epochs_run,
            *((continued_text(t, by_number),) if continued else ()),
            None if t.duration_s is None else f"{t.duration_s:.1f}",
            ", ".join(f"{k}={format_value(v)}" for k, v in t.params.items()),
            (t.error or "")[:60],
        )
        for t in trials
    ]
    headers = ("#", "state", *(("copied from",) if copied else ()), "value",
               *(("fold scores",) if cross_validated else ()), "epochs",
               *(("continues (epochs)",) if continued else ()), "seconds", "params", "error")
    return table(headers, rows)


def model_dict(model: ModelRecord) -> dict[str, Any]:
    """A retrained model as ``best --json`` and ``compare --json`` show it."""
    settings = model.settings or {}
    return json_safe(
        {
            "trial": model.trial_number,
            "path": model.path,
            "sha256": model.sha256,
            "test_metrics": model.test_metrics,
            "epochs_run": model.epochs_run,
            "best_epoch": settings.get("best_epoch"),
            "stop_reason": model.stop_reason,
            "seed": settings.get("seed"),
            "seeds": settings.get("seeds"),
            "callbacks": settings.get("callbacks"),
            "training_log": settings.get("training_log"),
            "created_at": model.created_at,
        }
    )


def metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{name}={format_value(value)}" for name, value in metrics.items())


def models_text(models: Sequence[ModelRecord]) -> list[str]:
    """Lines describing retrained models (newest first, as given), for ``best``."""
    lines = []
    for model in models:
        settings = model.settings or {}
        lines.append(f"  trial #{model.trial_number}, {model.created_at.strftime('%Y-%m-%d %H:%M')}: "
                     f"{model.path}")
        best_epoch = settings.get("best_epoch")
        epochs = f"{model.epochs_run} epochs" + (f" (best {best_epoch})" if best_epoch else "")
        lines.append(f"    test {metrics_text(model.test_metrics)}; {epochs}, stop: {model.stop_reason}; "
                     f"sha256 {model.sha256[:12]}")
        seeds = settings.get("seeds")
        if seeds:
            spread = ", ".join(
                f"{name} {format_value(mean)} ± {format_value(seeds['test_std'].get(name))}"
                for name, mean in seeds["test_mean"].items()
            )
            lines.append(f"    {len(seeds['seeds'])} seeds, test mean ± std: {spread}; exported seed "
                         f"{seeds['chosen']} (best {seeds['chosen_by']})")
    return lines


def _how_trained(study: StudyRecord) -> str:
    """What trained the study's trials, where it is not the default: the Keras backend (``--backend``) and
    the scikit-learn fold trainer (``--trainer``), both of which move values within noise."""
    settings = StudySettings.from_record(study.settings)
    shown = [f"{key} {value}" for key, value, default in (("backend", settings.backend, "tensorflow"),
                                                          ("trainer", settings.trainer, "scikeras"))
             if value not in (None, default)]
    return "".join(f", {part}" for part in shown)


def best_text(study: StudyRecord, trials: Sequence[TrialRecord], models: Sequence[ModelRecord] = ()) -> str:
    lines = [f"study '{study.name}' ({study.engine}/{study.algorithm}{_how_trained(study)}), objective "
             f"{study.objective} ({study.direction})"]
    for rank, trial in enumerate(trials, start=1):
        prefix = "best trial" if rank == 1 else f"#{rank}"
        duration = "-" if trial.duration_s is None else f"{trial.duration_s:.1f} s"
        lines.append(f"{prefix} #{trial.number}: {study.objective} = {format_value(trial.value)} "
                     f"({trial.epochs_run} epochs, {duration})")
        if trial.copied:
            # Trained in another study and copied in by --warm-start: say where it ran.
            lines.append(f"  copied from study {trial.copied_from} by --warm-start")
        width = max((len(name) for name in trial.params), default=0)
        for name, value in trial.params.items():
            lines.append(f"  {name.ljust(width)}  {format_value(value)}")
        folds = fold_scores(trial.metrics)
        if folds:
            # Cross-validated (sklearn engine): the value is the mean held-out fold score.
            lines.append(f"  {len(folds)} folds: {cv_text(trial.metrics)}; mean fit "
                         f"{format_value(trial.metrics.get('mean_fit_time'))} s")
            continue
        shown = {k: v for k, v in trial.metrics.items() if k != study.objective}
        if shown:
            lines.append("  final epoch: " + ", ".join(f"{k}={format_value(v)}" for k, v in shown.items()))
    if models:
        lines.append(f"retrained models ({len(models)}, newest first; test = held-out test split):")
        lines.extend(models_text(models))
    return "\n".join(lines)
