"""Cross-validating one candidate, as ``GridSearchCV`` does, with every fold recorded as it ends.

Folds come from ``check_cv(--cv, y, classifier=...)`` over the dataset's train+validation rows
(``cv_rows``; the test split is never seen). Each (candidate, fold) is fitted and scored by a fold fitter
(``hpsearch.executors.folds``); an error fails the candidate (``error_score``) and its other
folds are not fitted. The trial's value is the mean fold score in the objective's own sense (see
``scoring_for``); its metrics hold ``cv_results_``'s numbers (``split{k}_test_score``, ``mean_test_score``,
``std_test_score``, fit and score times).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ...errors import DataError
from ...training.runner import Attempt, TrialOutcome
from ...training.scoring import Scoring
from .resume import Fit, restore_folds

if TYPE_CHECKING:
    import numpy as np

    from ...data import Dataset
    from ...executors.folds import FoldFitter, PopulationFitter, Splits
    from ...training.fold_fitting import FoldResult
    from .candidates import Candidate


def cv_rows(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The rows cross-validation splits: train and validation together, never the test split."""
    import numpy as np

    return np.concatenate([dataset.x_train, dataset.x_val]), np.concatenate([dataset.y_train, dataset.y_val])


def cv_weights(dataset: Dataset) -> np.ndarray | None:
    """Per-row weights of the ``cv_rows`` (None when the data has none): passed to every fold's fit."""
    import numpy as np

    if dataset.w_train is None or dataset.w_val is None:
        return None
    return np.concatenate([dataset.w_train, dataset.w_val])


def check_rows(dataset: Dataset, y: np.ndarray, folds: int) -> None:
    """DataError unless ``y`` (the ``cv_rows`` labels) can be split into ``folds`` folds: enough rows, and
    for a classification enough rows of every class for stratified folds."""
    import numpy as np

    if len(y) < folds:
        raise DataError(
            f"{dataset.name}: --cv {folds} needs at least {folds} rows, but the train+validation split has "
            f"{len(y)}; lower --cv"
        )
    if dataset.task == "regression":
        return
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=dataset.n_classes)
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        name = dataset.class_names[smallest] if dataset.class_names else smallest
        raise DataError(
            f"{dataset.name}: --cv {folds} needs at least {folds} rows of every class (stratified folds), "
            f"but class {name!r} has {int(counts[smallest])} in the train+validation split; lower --cv"
        )


def cross_validation(candidate: Candidate, fitter: FoldFitter, splits: Splits, scoring: Scoring) -> Fit:
    """Training one candidate, as the trial runner calls it: every fold, scored as ``cv_results_``.

    The returned training fits the folds of ``splits`` with ``fitter`` (a retry only those its interrupted
    attempt had not finished), commits each fold's metrics as it ends, and completes the trial with the
    mean score signed as ``scoring`` wants it, or fails it with the first fold's error.
    """

    def cross_validate(attempt: Attempt) -> TrialOutcome:
        # A retry keeps the folds its interrupted attempt finished: the unit of resuming is the fold.
        results, todo = folds_to_fit(attempt, splits)
        fold_results = fitter.folds(attempt, candidate.sklearn_params, splits, todo)
        with contextlib.closing(fold_results):
            return settle_folds(attempt, results, fold_results, scoring)

    return cross_validate


def folds_to_fit(attempt: Attempt, splits: Splits) -> tuple[list[FoldResult], list[int]]:
    """The folds a retry keeps from its interrupted attempt (recorded again on ``attempt``), and the folds
    still to fit."""
    results: list[FoldResult] = restore_folds(attempt, len(splits))
    return results, sorted(set(range(len(splits))) - {result.fold for result in results})


def settle_folds(attempt: Attempt, kept: list[FoldResult], fitted: Iterable[FoldResult],
                 scoring: Scoring) -> TrialOutcome:
    """Commit each fold of ``fitted`` as it comes, then complete the trial with the mean score of all its
    folds (``kept`` and ``fitted``), or fail it with the first fold's error (its later folds unused)."""
    results = list(kept)
    for result in fitted:
        attempt.partial(result.metrics())  # each fold committed as it ends
        if result.error is not None:
            # error_score: the candidate fails; its other folds are not fitted
            return TrialOutcome.failed(result.error)
        results.append(result)
    mean, metrics = cv_results(results)
    return TrialOutcome.complete(scoring.sign * mean, metrics)


def candidates_together(
    candidates: dict[str, Candidate], fitter: PopulationFitter, splits: Splits, scoring: Scoring
) -> Callable[[list[Attempt]], list[TrialOutcome | Exception]]:
    """Training several candidates at once, as the trial runner calls it (``run_pack``): the folds of every
    claimed attempt (``candidates`` by the engine trial id of each) as populations, each trial then
    settled as ``cross_validation`` settles it."""

    def cross_validate(attempts: list[Attempt]) -> list[TrialOutcome | Exception]:
        kept, requests = [], []
        for attempt in attempts:
            results, todo = folds_to_fit(attempt, splits)
            kept.append(results)
            requests.append((attempt, candidates[attempt.record.engine_trial_id].sklearn_params, todo))
        fitted = fitter.fit_many(requests, splits)
        return [settle_folds(attempt, results, new, scoring)
                for attempt, results, new in zip(attempts, kept, fitted, strict=True)]

    return cross_validate


def cv_results(results: list[FoldResult]) -> tuple[float, dict[str, float]]:
    """The mean test score of a candidate's folds, and its ``cv_results_`` summary columns (mean and
    standard deviation of the test scores, fit and score times)."""
    import numpy as np

    results = sorted(results, key=lambda result: result.fold)
    scores = np.array([result.score for result in results], dtype=float)
    fit_times = np.array([result.fit_time for result in results])
    score_times = np.array([result.score_time for result in results])
    # As cv_results_ computes them: plain mean and population std over the folds.
    mean = float(np.average(scores))
    metrics = dict(
        mean_test_score=mean,
        std_test_score=float(np.sqrt(np.average((scores - mean) ** 2))),
        mean_fit_time=float(fit_times.mean()),
        std_fit_time=float(fit_times.std()),
        mean_score_time=float(score_times.mean()),
        std_score_time=float(score_times.std()),
    )
    return mean, metrics
