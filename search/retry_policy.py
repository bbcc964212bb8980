"""The one retry policy, the same for every engine: which cut-short configurations run again, and when one
is given up.

A trial cut short (its worker crashed or was killed, Ctrl-C, a fold process that died, a database that
failed) is recorded FAILED and *interrupted*: it was not the configuration's fault and uses no budget. Its
configuration is tried again, before new proposals, as a new trial naming the cut-short one in
``retry_of``; a retry continues from the checkpoint (or the finished folds) the cut-short attempt left.
One configuration gets ``MAX_ATTEMPTS`` attempts in all; when that many were cut short, its next trial is
recorded FAILED (not interrupted) with a clear error instead of being trained, so a configuration that
kills its worker every time cannot stall the study.

Attempts of one configuration form a chain through ``retry_of``; the driver
(:mod:`hpsearch.driver`) follows it before training a retry.
"""

from __future__ import annotations

from collections.abc import Callable

from hpsearch.storage import Storage, StudyRecord, TrialRecord

from .training.runner import Attempt, TrialOutcome

#: Attempts one configuration gets in all (the first and its retries) before it is given up.
MAX_ATTEMPTS = 3

#: How the trial runner trains one trial: the attempt in, how it ended out.
Fit = Callable[[Attempt], TrialOutcome]


def trials_to_retry(storage: Storage, study: StudyRecord) -> list[TrialRecord]:
    """The study's interrupted trials whose configuration is due another trial, in number order.

    Args:
        storage: the study's store.
        study: the study.

    Returns:
        Each interrupted trial that no later trial retries: the latest cut-short attempt of its
        configuration. One cut short ``MAX_ATTEMPTS`` times is included too: its next trial records it
        given up (see ``give_up_or``).
    """
    trials = storage.list_trials(study.id)
    retried = {trial.retry_of for trial in trials if trial.retry_of is not None}
    return [trial for trial in trials if trial.interrupted and trial.number not in retried]


def interrupted_attempts(storage: Storage, study: StudyRecord, retry_of: int | None) -> list[TrialRecord]:
    """The cut-short attempts a retry of trial ``retry_of`` follows, oldest first (empty for no retry).

    Args:
        storage: the study's store.
        study: the study.
        retry_of: the trial number the new trial retries, or None.

    Raises:
        StorageError: the store failed while reading the chain.
    """
    chain: list[TrialRecord] = []
    seen: set[int] = set()
    number = retry_of
    while number is not None and number not in seen:
        seen.add(number)
        trial = storage.get_trial(study.id, number)
        if not trial.interrupted:
            break
        chain.append(trial)
        number = trial.retry_of
    chain.reverse()
    return chain


def given_up_reason(attempts: list[TrialRecord]) -> str | None:
    """Why a configuration with these cut-short ``attempts`` is not trained again, or None while it may be.

    Args:
        attempts: its interrupted attempts, oldest first (``interrupted_attempts``).
    """
    if len(attempts) < MAX_ATTEMPTS:
        return None
    numbers = ", ".join(f"#{trial.number}" for trial in attempts)
    return (f"given up after {len(attempts)} interrupted attempts ({numbers}): its worker died or was "
            "stopped each time")


def give_up_or(fit: Fit) -> Fit:
    """``fit`` for a retry, checking first whether its configuration was cut short ``MAX_ATTEMPTS``
    times: then the trial is recorded FAILED with the reason, without training.

    The check runs once the trial is claimed, inside the trial runner, so a store that fails while the
    chain of attempts is read is handled as any database failure during a trial.

    Args:
        fit: how the trial trains when it may.

    Returns:
        The training the runner calls with the claimed attempt.
    """

    def train(attempt: Attempt) -> TrialOutcome:
        ctx = attempt.runner.ctx
        attempts = interrupted_attempts(ctx.storage, ctx.study, attempt.record.retry_of)
        reason = given_up_reason(attempts)
        if reason is not None:
            return TrialOutcome.failed(reason)
        return fit(attempt)

    return train
