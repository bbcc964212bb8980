"""Studies side by side, whichever engine ran them.

Each study gets one row: engine and algorithm, trials by state, epochs and seconds spent, the best
search score and, where the study was retrained, the test metrics of the retrained model. The search
score is what the engine optimised (a validation split, or cross-validation for the sklearn engine) and
was selected on; the test score is on rows no trial saw. They are not directly comparable, and the
output says so. Imports only storage: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpsearch.storage import ModelRecord, Storage, StudySummary, TrialState

from ..errors import UsageError
from .queries import format_value, json_safe, metrics_text, table

SCORES_NOTE = (
    "note: 'best' is the search's own score (validation split, or cross-validation for sklearn) of the "
    "trial it selected; 'test' is the retrained model on the held-out test split, which no trial saw. "
    "They are not directly comparable: the search score was selected on, the test score was not."
)


class UnknownStudyError(UsageError):
    """``compare`` was given a study name the database does not hold."""


def _retrained(models: Sequence[ModelRecord], best_number: int | None) -> tuple[ModelRecord | None, bool]:
    """The newest model of the best trial's config, else the newest model of any trial."""
    of_best = [model for model in models if model.trial_number == best_number]
    if of_best:
        return of_best[-1], True
    return (models[-1], False) if models else (None, False)


def compare_studies(storage: Storage, names: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per named study, in the order given; an unknown name is a usage error naming it."""
    summaries: dict[str, StudySummary] = {summary.study.name: summary for summary in storage.list_studies()}
    unknown = [name for name in names if name not in summaries]
    if unknown:
        known = ", ".join(sorted(summaries)) or "none"
        raise UnknownStudyError(
            f"no study {', '.join(map(repr, unknown))} in {storage.where}; existing studies: {known}"
        )
    rows = []
    for name in dict.fromkeys(names):  # a name given twice is shown once
        summary = summaries[name]
        study = summary.study
        best = storage.best_trials(study.id, 1)
        best_number = best[0].number if best else None
        model, of_best = _retrained(storage.list_models(study.id), best_number)
        retrained = None
        if model is not None:
            retrained = {
                "trial": model.trial_number,
                "best_config": of_best,
                "path": model.path,
                "test_metrics": model.test_metrics,
                "seeds": (model.settings or {}).get("seeds"),
                "epochs_run": model.epochs_run,
                "stop_reason": model.stop_reason,
                "created_at": model.created_at,
            }
        rows.append(
            {
                "study": study.name,
                "engine": study.engine,
                "algorithm": study.algorithm,
                "objective": study.objective,
                "direction": study.direction,
                "data": study.dataset.get("source"),
                "data_fingerprint": study.dataset.get("fingerprint"),
                "trials": summary.n_trials,
                # Of ``trials``, copied from other studies by --warm-start; epochs/seconds exclude them.
                "copied_trials": summary.copied,
                "states": {state.value: summary.counts.get(state, 0) for state in TrialState},
                "epochs_total": summary.epochs_total,
                # A cross-validated trial (sklearn) trains one model per fold; epochs_total counts its
                # longest fold once, so the training it cost is up to epochs_total x folds_per_trial.
                "folds_per_trial": _folds_per_trial(study.engine, study.settings),
                "seconds_total": summary.seconds_total,
                "best_trial": best_number,
                "best_value": best[0].value if best else None,
                "best_copied_from": best[0].copied_from if best else None,
                "retrained": retrained,
                "scores_note": SCORES_NOTE,
            }
        )
    return json_safe(rows)


def _folds_per_trial(engine: str, settings: dict[str, Any]) -> int:
    if engine != "sklearn":
        return 1
    from ..engines.sklearn.settings import cv_folds
    from ..settings import StudySettings

    return cv_folds(StudySettings.from_record(settings))


def compare_text(rows: Sequence[dict[str, Any]]) -> str:
    def test_cell(row: dict[str, Any]) -> str:
        retrained = row["retrained"]
        if retrained is None:
            return "-"
        text = metrics_text(retrained["test_metrics"])
        return text if retrained["best_config"] else f"{text} (trial #{retrained['trial']}, not the best)"

    headers = ("study", "engine", "algorithm", "objective", "trials", "complete", "pruned", "failed",
               "running", "epochs", "seconds", "best (search)", "test (retrained)")
    body = [
        (
            row["study"], row["engine"], row["algorithm"],
            f"{row['objective']} ({'min' if row['direction'] == 'minimize' else 'max'})",
            f"{row['trials']} ({row['copied_trials']} copied)" if row["copied_trials"] else row["trials"],
            row["states"]["COMPLETE"], row["states"]["PRUNED"], row["states"]["FAILED"],
            row["states"]["RUNNING"],
            row["epochs_total"] if row["folds_per_trial"] == 1
            else f"{row['epochs_total']} x {row['folds_per_trial']} folds",
            f"{row['seconds_total']:.1f}",
            "-" if row["best_value"] is None else f"{format_value(row['best_value'])} (#{row['best_trial']}"
            + (f", copied from {row['best_copied_from']})" if row["best_copied_from"] else ")"),
            test_cell(row),
        )
        for row in rows
    ]
    lines = [table(headers, body), "", SCORES_NOTE]
    if len({row["data_fingerprint"] for row in rows}) > 1:
        lines.append("note: these studies ran on different data; their scores are not comparable at all.")
    if len({row["objective"] for row in rows}) > 1:
        lines.append("note: these studies optimise different objectives.")
    return "\n".join(lines)
