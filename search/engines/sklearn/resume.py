"""Resuming a scikit-learn search from our tables: what the study holds per candidate, and its retries.

Scikit-learn has no resume; ours comes from the stored trials. A candidate whose trial ended on its own
(complete, pruned, or failed by its own error) is done and never fitted again; a candidate whose trial was
cut short (Ctrl-C, ``kill -9``, a fold process that died) is run again as a new trial that names the
interrupted one in ``retry_of`` and keeps the folds it had finished (the unit of resuming is the fold),
until the one retry policy of every engine gives it up (:mod:`hpsearch.retry_policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from hpsearch.storage import TrialRecord, TrialState

from ...training.runner import Attempt
from ..session import Fit

if TYPE_CHECKING:
    from ...training.fold_fitting import FoldResult

__all__ = ["CandidateHistory", "Fit", "histories", "restore_folds"]

Key = TypeVar("Key", bound=Hashable)


@dataclass
class CandidateHistory:
    """What the study already holds for one candidate (for successive halving: one candidate of one rung)."""

    #: The trial that ended on its own (complete, pruned, or failed by its own error), if any.
    finished: TrialRecord | None = None
    #: Another live process is fitting it.
    running: bool = False
    #: Its cut-short trials, oldest first.
    interrupted: list[TrialRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """It has a result: it is never fitted again."""
        return self.finished is not None

    @property
    def retry_of(self) -> int | None:
        """The number of the trial its next trial retries (the last cut-short one), None if none was."""
        return self.interrupted[-1].number if self.interrupted else None


def histories(
    trials: list[TrialRecord], key_of: Callable[[TrialRecord], Key | None]
) -> dict[Key, CandidateHistory]:
    """The stored ``trials`` gathered by candidate: ``key_of`` names a trial's candidate (None: a trial
    that is no candidate's, left out)."""
    found: dict[Key, CandidateHistory] = {}
    for trial in trials:
        key = key_of(trial)
        if key is None:
            continue
        history = found.setdefault(key, CandidateHistory())
        if trial.state is TrialState.RUNNING:
            history.running = True
        elif trial.interrupted:
            history.interrupted.append(trial)
        else:
            history.finished = trial
    return found


def restore_folds(attempt: Attempt, n_folds: int) -> list[FoldResult]:
    """The folds the interrupted trial this one retries had finished, recorded again on this trial (scores,
    times and per-epoch curves), so that only the others are fitted; empty for a trial that retries none."""
    from ...training.fold_fitting import FoldResult
    from ...training.runner import FOLDS_RESTORED

    retry_of = attempt.record.retry_of
    if retry_of is None:
        return []
    ctx = attempt.runner.ctx
    earlier = ctx.storage.get_trial(ctx.study.id, retry_of, with_epochs=True)
    restored = []
    for fold in range(n_folds):
        prefix = f"split{fold}_"
        score = earlier.metrics.get(prefix + "test_score")
        if score is None:
            continue  # not finished (or failed): fitted again
        curves = {name.removeprefix(prefix): values for name, values in earlier.curves.items()
                  if name.startswith(prefix)}
        epochs = max((sum(value is not None for value in values) for values in curves.values()), default=0)
        for epoch in range(epochs):
            attempt.record_epoch(epoch, {name: values[epoch] for name, values in curves.items()
                                         if epoch < len(values) and values[epoch] is not None}, fold=fold)
        result = FoldResult(fold, float(score), float(earlier.metrics.get(prefix + "fit_time", 0.0)),
                            float(earlier.metrics.get(prefix + "score_time", 0.0)), epochs)
        attempt.partial(result.metrics())
        restored.append(result)
    if restored:
        attempt.metrics[FOLDS_RESTORED] = float(len(restored))
    return restored
