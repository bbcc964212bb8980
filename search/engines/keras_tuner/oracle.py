"""KerasTuner's oracle, with its state kept in the study instead of in files.

KerasTuner writes ``oracle.json`` and one ``trial.json`` per trial with plain ``open(..., "w")``: a
``kill -9`` in the middle leaves a truncated file that ``reload`` cannot parse. Here the oracle writes no
files at all. Its state (``Oracle.get_state()`` plus each KerasTuner trial's values, status and score) is
written into the study's settings under ``keras_tuner_state``, in one database transaction, each time a
trial starts and when a run stops. A kill leaves either the old or the new snapshot, and the one
in-flight trial is reconciled with our trial table on the next start:

- our record finished on its own (killed after recording it, before the next snapshot): the oracle is
  told that outcome, the trial is not trained again;
- our record was interrupted and is due a retry (``hpsearch.retry_policy``): the oracle runs the same
  KerasTuner trial again (same values, same Hyperband bracket and round), recorded with ``retry_of``; a
  configuration cut short too often is then recorded given up, and the oracle marks it failed;
- interrupted but not due a retry (a later trial already retried it): the oracle marks it failed;
- never recorded (killed before training began): the oracle runs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace
from hpsearch.storage import TrialRecord, TrialState

from ...errors import SearchFailedError
from ...seeds import keras_tuner_seed
from .plan import hyperband_settings

if TYPE_CHECKING:
    from ...training.context import RunContext

#: Study settings key holding the oracle's snapshot.
STATE_KEY = "keras_tuner_state"
STATE_VERSION = 1
#: Key of the Bayesian oracle's NumPy random state inside the snapshot's oracle state.
RANDOM_STATE_KEY = "hp_random_state"


def new_oracle(ctx: RunContext) -> Any:
    """A fresh oracle of the study's algorithm on its space, writing no files (see the module docstring).

    Args:
        ctx: the run; its settings pick the algorithm (and Hyperband's options), its study the objective.
    """
    import keras_tuner
    from hpsearch.spaces.compile_keras_tuner import declare_hyperparameters

    algorithm = ctx.settings.algorithm
    base = {
        "random": keras_tuner.oracles.RandomSearchOracle,
        "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
        "hyperband": keras_tuner.oracles.HyperbandOracle,
    }[algorithm]
    options: dict[str, Any] = {
        "objective": keras_tuner.Objective(
            ctx.study.objective, direction="min" if ctx.study.direction == "minimize" else "max"
        ),
        # The space is declared in full up front: no entry may appear during the search.
        "hyperparameters": declare_hyperparameters(ctx.space),
        "allow_new_entries": False,
        "tune_new_entries": False,
        # KerasTuner takes seed 0 as "no seed"; +1 keeps --seed 0 reproducible.
        "seed": keras_tuner_seed(ctx.seed),
        "max_consecutive_failed_trials": ctx.tracker.budget.max_consecutive_failures,
    }
    if algorithm == "hyperband":
        max_epochs, factor = hyperband_settings(ctx.space, ctx.settings)
        options.update(max_epochs=max_epochs, factor=factor, hyperband_iterations=1)
    else:
        # The shared BudgetTracker counts trials (retries and all); the oracle proposes until told.
        options["max_trials"] = None
    oracle = _database_backed(base)(**options)
    oracle.verbose = 0
    return oracle


def _database_backed(base: type) -> type:
    """``base`` oracle whose state goes into our database (see the module docstring), not into files."""

    class DatabaseBackedOracle(base):  # type: ignore[misc, valid-type]
        def save(self) -> None:
            """No ``oracle.json``: the engine snapshots the state into the study in one transaction."""

        def _save_trial(self, trial: Any) -> None:
            """No ``trial.json`` either: the snapshot holds every trial."""

        def reload(self) -> None:
            """Restored from the snapshot by the engine, never from files."""

        def _check_consecutive_failures(self) -> None:
            # The limit is the same (--max-failures), counted by the shared BudgetTracker, which stops the
            # search before the next trial and ends it with hpsearch's one message instead of a
            # RuntimeError from inside ``end_trial``.
            return

        def get_state(self) -> dict[str, Any]:
            # The Bayesian oracle draws the starting points of its acquisition search from a NumPy random
            # state that KerasTuner's own state leaves out (it restarts from the seed on reload); kept
            # here, a resumed search proposes what the uninterrupted one would have.
            state = super().get_state()
            random_state = getattr(self, "_random_state", None)
            if random_state is not None:
                kind, keys, position, has_gauss, cached = random_state.get_state()
                state[RANDOM_STATE_KEY] = [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]
            return state

        def set_state(self, state: Mapping[str, Any]) -> None:
            super().set_state(state)
            saved = state.get(RANDOM_STATE_KEY)
            random_state = getattr(self, "_random_state", None)
            if saved is not None and random_state is not None:
                import numpy

                kind, keys, position, has_gauss, cached = saved
                random_state.set_state((kind, numpy.array(keys, dtype=numpy.uint32), position, has_gauss,
                                        cached))

    DatabaseBackedOracle.__name__ = DatabaseBackedOracle.__qualname__ = f"DatabaseBacked{base.__name__}"
    return DatabaseBackedOracle


# -- the snapshot -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON for numpy scalars that KerasTuner leaves in values and scores."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the oracle snapshot")


def _snapshot(oracle: Any) -> dict[str, Any]:
    trials = {
        trial_id: {
            "values": trial.hyperparameters.values,
            "status": trial.status,
            "score": trial.score,
            "best_step": trial.best_step,
        }
        for trial_id, trial in oracle.trials.items()
    }
    state = {"version": STATE_VERSION, "oracle": oracle.get_state(), "trials": trials}
    return json.loads(json.dumps(state, default=_plain))


def save_snapshot(ctx: RunContext, oracle: Any) -> None:
    """Store ``oracle``'s state in the study's settings, in one transaction: a kill leaves the previous
    snapshot or this one, never half of one."""
    ctx.storage.update_study_settings(ctx.study.id, {STATE_KEY: _snapshot(oracle)})


def restore_snapshot(ctx: RunContext, oracle: Any) -> bool:
    """Load the study's last snapshot into ``oracle``, fresh from ``new_oracle``.

    Returns:
        False when the study has no snapshot yet (its first run), True once restored.

    Raises:
        SearchFailedError: the snapshot was written in a format version this hpsearch does not read.
    """
    snapshot = ctx.storage.get_study(ctx.study.name).settings.get(STATE_KEY)
    if not snapshot:
        return False
    if snapshot.get("version") != STATE_VERSION:
        raise SearchFailedError(
            f"study '{ctx.study.name}' keeps KerasTuner state version "
            f"{snapshot.get('version')}, but this hpsearch reads version {STATE_VERSION}"
        )
    from keras_tuner.engine.trial import Trial

    for trial_id, saved in snapshot["trials"].items():
        hyperparameters = oracle.hyperparameters.copy()
        hyperparameters.values = dict(saved["values"])
        trial = Trial(hyperparameters, trial_id=trial_id, status=saved["status"])
        trial.score = saved["score"]
        trial.best_step = saved["best_step"]
        oracle.trials[trial_id] = trial
    oracle.set_state(snapshot["oracle"])
    return True


def reconcile(oracle: Any, trials: list[TrialRecord], retries: list[TrialRecord],
              objective: str) -> dict[str, int]:
    """Settle the trial(s) a restored snapshot still shows running with what our table recorded.

    Args:
        oracle: the oracle just restored by ``restore_snapshot``.
        trials: the study's trial records, in number order.
        retries: the interrupted records due another attempt (``retry_policy.trials_to_retry``).
        objective: the metric the oracle scores trials by.

    Returns:
        KerasTuner trial id -> number of the interrupted record that its next run retries.
    """
    retry_of: dict[str, int] = {}
    latest: dict[str, TrialRecord] = {}
    for record in trials:
        if record.engine_trial_id is not None:
            latest[record.engine_trial_id] = record  # trials come in number order
    retry = {record.number for record in retries}
    # Trials the oracle started but never ended: running when the snapshot was taken, or queued to
    # run again by an earlier reconciliation that a budget stop left unconsumed.
    unsettled = [oracle.trials[trial_id] for trial_id in oracle._retry_queue]
    unsettled += [trial for trial in oracle.ongoing_trials.values() if trial not in unsettled]
    oracle._retry_queue = []
    oracle.ongoing_trials = {}
    for trial in unsettled:
        record = latest.get(trial.trial_id)
        if record is None or (record.interrupted and record.number in retry):
            # Never trained, or interrupted and due a retry: the oracle runs it again first.
            if record is not None:
                retry_of[trial.trial_id] = record.number
            trial.status = "INVALID"  # not RUNNING: no oracle may score a trial nobody runs
            oracle._retry_queue.append(trial.trial_id)
        else:
            # Finished on its own (the kill came before the next snapshot), or already retried.
            if record.state is TrialState.COMPLETE and record.value is not None:
                oracle.update_trial(trial.trial_id, {objective: record.value},
                                    step=max(record.epochs_run - 1, 0))
                trial.status = "COMPLETED"
            else:
                trial.status = "FAILED"
                trial.message = record.error
            oracle.end_trial(trial)
    oracle.ongoing_trials = {}
    return retry_of


def seed_history(oracle: Any, space: SearchSpace, copies: list[TrialRecord], objective: str) -> None:
    """End one oracle trial per ``--warm-start`` copy with its score, as if the oracle had run it: the
    random oracle does not propose its values again, the Bayesian one fits its Gaussian process to it.

    Args:
        oracle: a fresh random or Bayesian oracle (no snapshot yet).
        space: the study's space, which the copies' parameters are points of.
        copies: the copied trial records; those without a value are skipped.
        objective: the metric the oracle scores trials by.
    """
    from hpsearch.spaces.compile_keras_tuner import hyperparameter_values
    from keras_tuner.engine.trial import Trial

    for record in copies:
        if record.value is None:
            continue
        hyperparameters = oracle.hyperparameters.copy()
        hyperparameters.values = hyperparameter_values(space, record.params)
        # KerasTuner's own id scheme (the trial count, padded), so the trials it creates next follow on.
        trial_id = f"{{:0{len(str(oracle.max_trials))}d}}".format(len(oracle.trials))
        trial = Trial(hyperparameters, trial_id=trial_id, status="RUNNING")
        oracle.trials[trial_id] = trial
        oracle.start_order.append(trial_id)
        oracle._record_values(trial)
        oracle.update_trial(trial_id, {objective: record.value}, step=max(record.epochs_run - 1, 0))
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
