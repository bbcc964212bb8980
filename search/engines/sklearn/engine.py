"""The scikit-learn engine: GridSearchCV and RandomizedSearchCV over a SciKeras wrapper, resumable.

What scikit-learn would do, fold by fold, with every fold recorded as it ends:

- candidates come from ``ParameterGrid(to_param_grid(space))`` (``--algorithm grid``) or
  ``ParameterSampler(to_param_distributions(space), n_iter=--trials, random_state=--seed)``
  (``--algorithm random``), the very iterators ``GridSearchCV`` and ``RandomizedSearchCV`` use, so the
  candidates and their order are theirs;
- folds come from ``check_cv(--cv, y, classifier=...)`` over the dataset's train+validation rows (the
  test split is never seen), as ``GridSearchCV(cv=K)`` splits them: ``StratifiedKFold`` for
  classification, ``KFold`` for regression, unshuffled;
- each (candidate, fold) is ``clone(estimator).set_params(**candidate).fit(train)`` then the scorer on
  the held-out fold; an error fails the candidate (``error_score``) and the search goes on. With
  ``--trainer hpsearch`` the fit is the same training outside SciKeras' ``fit`` (batches in our seeded
  order, see ``hpsearch.engines.sklearn.direct``), scored by the same scorer.

A candidate is one trial: its value is the mean fold score in the objective's own sense (see
``scoring_for``), its metrics hold ``cv_results_``'s numbers (``split{k}_test_score``, ``mean_test_score``,
``std_test_score``, fit and score times), and its curves hold every fold's epochs as ``split{k}_<metric>``.

Scikit-learn has no resume; ours comes from our tables. A candidate whose trial ended on its own
(complete, or failed by its own error) is done and never fitted again; a candidate whose trial was cut
short (Ctrl-C, ``kill -9``) is run again, first, as a new trial that names the interrupted one in
``retry_of``; after ``MAX_INTERRUPTED_ATTEMPTS`` cut-short attempts it is given up (recorded FAILED) so a
configuration that kills its worker cannot stall the study. Candidates are matched by their parameters,
so every candidate has at most one result, and trial numbers follow candidate order, which makes
``hpsearch best`` break ties as ``GridSearchCV.best_params_`` does (the first best candidate).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from hpsearch.spaces import SearchSpace, resolve_config
from hpsearch.storage import TrialRecord, TrialState

from ...errors import DataError, FitProcessLostError, UsageError
from ...training.runner import Attempt, Proposal, RunStatus, TrialOutcome, TrialRunner
from ...training.scoring import Scoring, scorer, scoring_for
from ..base import Engine, RunContext
from .halving import (
    HALVING_ALGORITHMS,
    HALVING_OPTIONS,
    data_shape,
    describe_plan,
    halving_settings,
    plan_for,
    run_halving,
)

if TYPE_CHECKING:
    import numpy as np

    from ...data import Dataset
    from ...executors.cluster import StopSignal
    from .estimators import FoldResult

DEFAULT_CV = 3
DEFAULT_JOBS = 1
#: ``--trainer``: what fits a fold. ``scikeras``: SciKeras' own fit, as GridSearchCV runs it (its scores to
#: the bit); ``hpsearch``: the same model and training without Keras' fit machinery, batches in hpsearch's
#: seeded order (scores within that order's noise; see hpsearch.engines.sklearn.direct).
TRAINERS = ("scikeras", "hpsearch")
DEFAULT_TRAINER = "scikeras"
#: How often a trial waiting on its fold processes looks whether the run stops (Ctrl-C, a fatal error).
_POLL_S = 0.2
#: A candidate cut short this many times (its worker killed, or Ctrl-C) is recorded FAILED and given up.
MAX_INTERRUPTED_ATTEMPTS = 3
#: ``n_iter`` of a random search bounded by time only: the sampler is read lazily, one candidate at a time.
_UNBOUNDED = 2**31 - 1

def _scoring_text(objective: str, task: str) -> str:
    if task != "auto":
        return f"scoring '{scoring_for(objective, task).name}'"
    kinds: dict[str, list[str]] = {}
    for kind in ("binary", "multiclass", "regression"):
        with contextlib.suppress(UsageError):
            kinds.setdefault(scoring_for(objective, kind).name, []).append(kind)
    names = [f"'{name}' ({'classification' if found == ['binary', 'multiclass'] else ' or '.join(found)})"
             for name, found in kinds.items()]
    return "scoring " + " or ".join(names)


def _scikeras_class(estimator: Any) -> str:
    """The SciKeras class our estimator extends (``KerasClassifier``, ``KerasRegressor``)."""
    return next(cls.__name__ for cls in type(estimator).__mro__ if cls.__module__.startswith("scikeras"))


# -- settings ---------------------------------------------------------------------------------------------
def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cv_folds(settings: Mapping[str, Any]) -> int:
    folds = settings.get("cv")
    folds = DEFAULT_CV if folds is None else folds
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UsageError(f"--cv must be an integer of at least 2 (folds), but got {folds}")
    return folds


def cv_jobs(settings: Mapping[str, Any]) -> int:
    """``--jobs``: fold fits at once, each in its own process with its share of the cores.

    More processes than cores would only oversubscribe them (each one a TensorFlow runtime), so that is
    refused rather than silently slowed down.
    """
    jobs = settings.get("jobs")
    jobs = DEFAULT_JOBS if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs must be at least 1, but got {jobs}")
    cores = available_cores()
    if jobs > cores:
        raise UsageError(
            f"--jobs {jobs} asks for more parallel fits than the {cores} CPU core(s) this process may use; "
            f"each parallel fold is a TensorFlow process, and more of them than cores only oversubscribe "
            f"the cores: use --jobs {cores} or less"
        )
    return jobs


def fold_trainer(settings: Mapping[str, Any]) -> str:
    trainer = settings.get("trainer")
    trainer = DEFAULT_TRAINER if trainer is None else trainer
    if trainer not in TRAINERS:
        raise UsageError(f"--trainer must be one of {', '.join(TRAINERS)}, but got {trainer!r}")
    return trainer


def cv_cluster(settings: Mapping[str, Any]) -> str | None:
    """``--dask``: the scheduler that fold fits are sent to as tasks (None: fit them on this machine)."""
    from ...executors.cluster import check_address, dask_address

    check_address(settings.get("dask"))
    address = dask_address(settings)
    jobs = settings.get("jobs")
    if address is not None and jobs is not None and jobs != 1:
        raise UsageError(
            f"--jobs {jobs} and --dask cannot be combined: --jobs fits folds in processes on this machine, "
            "--dask sends them to the Dask cluster, whose workers decide how many run at once (give --jobs 1 "
            "to resume a --jobs study on a cluster)"
        )
    return address


# -- candidates -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One parameter setting: as scikit-learn sets it on the estimator, and as the trial records it."""

    index: int
    sklearn_params: dict[str, Any]
    point: dict[str, Any]

    @property
    def key(self) -> str:
        return candidate_key(self.point)


def candidate_key(point: Mapping[str, Any]) -> str:
    """Identity of a candidate across runs: its parameters, as stored (JSON round-trips them exactly)."""
    return json.dumps(dict(point), sort_keys=True)


def _candidate(space: SearchSpace, index: int, sklearn_params: Mapping[str, Any]) -> Candidate:
    from hpsearch.spaces.compile_sklearn import config_from_sklearn_params

    tuned = config_from_sklearn_params(sklearn_params)
    point = {name: tuned[name] for name in space.params}
    return Candidate(index, {key: tuned[key.removeprefix("model__")] for key in sklearn_params}, point)


def _candidate_of_trial(space: SearchSpace, trial: TrialRecord) -> Candidate:
    from hpsearch.spaces.compile_sklearn import MODEL_PREFIX, WRAPPER_PARAMS

    index = int(trial.engine_trial_id) if (trial.engine_trial_id or "").isdigit() else -1
    routed = {(name if name in WRAPPER_PARAMS else MODEL_PREFIX + name): value
              for name, value in trial.params.items()}
    return _candidate(space, index, routed)


def compiled_space(space: SearchSpace, algorithm: str) -> dict[str, Any]:
    from hpsearch.spaces.compile_sklearn import to_param_distributions, to_param_grid

    return to_param_grid(space) if algorithm in ("grid", "halving-grid") else to_param_distributions(space)


def candidate_count(space: SearchSpace, settings: Mapping[str, Any]) -> int | None:
    """How many candidates scikit-learn would fit (None: a random search bounded by time only)."""
    if settings["algorithm"] == "grid":
        return space.grid_size()
    trials = settings.get("trials")
    if trials is None:
        return None
    from hpsearch.spaces import SpaceError

    try:
        return min(int(trials), space.grid_size())  # all finite: sampled without replacement
    except SpaceError:
        return int(trials)


def candidates(space: SearchSpace, settings: Mapping[str, Any], seed: int) -> Iterator[Candidate]:
    """The candidates ``GridSearchCV`` / ``RandomizedSearchCV(n_iter=trials, random_state=seed)`` fit,
    in their order."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    compiled = compiled_space(space, settings["algorithm"])
    if settings["algorithm"] == "grid":
        settings_iter: Any = ParameterGrid(compiled)
    else:
        trials = settings.get("trials")
        settings_iter = ParameterSampler(compiled, n_iter=_UNBOUNDED if trials is None else int(trials),
                                         random_state=seed)
    with warnings.catch_warnings():
        # "The total space of parameters is smaller than n_iter": expected with a time-only budget.
        warnings.simplefilter("ignore", UserWarning)
        for index, params in enumerate(settings_iter):
            yield _candidate(space, index, params)


@dataclass
class _History:
    """What the study already holds for one candidate."""

    done: bool = False
    running: bool = False
    interrupted: list[TrialRecord] = field(default_factory=list)


def _histories(trials: list[TrialRecord]) -> dict[str, _History]:
    histories: dict[str, _History] = {}
    for trial in trials:
        history = histories.setdefault(candidate_key(trial.params), _History())
        if trial.state is TrialState.RUNNING:
            history.running = True  # another live process is fitting it
        elif trial.interrupted:
            history.interrupted.append(trial)
        else:
            history.done = True
    return histories


# -- data -------------------------------------------------------------------------------------------------
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


def _check_rows(dataset: Dataset, y: np.ndarray, folds: int) -> None:
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


# -- the engine -------------------------------------------------------------------------------------------
class SklearnEngine(Engine):
    name = "sklearn"
    algorithms = ("grid", "random", *HALVING_ALGORITHMS)
    default_algorithm = "grid"
    options = ("cv", "jobs", "dask", "trainer", *HALVING_OPTIONS)

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        cv_folds(settings)
        cv_jobs(settings)
        fold_trainer(settings)
        address = cv_cluster(settings)
        if space.task != "auto":
            scoring_for(space.objective, space.task)
        algorithm = settings["algorithm"]
        if algorithm in ("grid", "halving-grid"):
            space.grid_size()  # raises SpaceError naming a parameter without finite values
        if algorithm not in HALVING_ALGORITHMS:
            given = [key for key in HALVING_OPTIONS if settings.get(key) is not None]
            if given:
                flags = " and ".join("--" + key.replace("_", "-") for key in given)
                verb = "applies" if len(given) == 1 else "apply"
                raise UsageError(f"{flags} {verb} to --algorithm halving-grid or halving-random only, not "
                                 f"'{algorithm}'")
            return
        halving_settings(space, settings)
        if address is not None:
            raise UsageError(f"--algorithm {algorithm} trains on this machine (--jobs N for parallel folds); "
                             "it does not run on a Dask cluster: leave out --dask (or give --dask local, or "
                             "unset HPSEARCH_DASK)")
        plan = plan_for(space, settings)
        trials = settings.get("trials")
        if trials is not None and trials > plan.trials:
            raise UsageError(
                f"--trials {trials} is more than the {plan.trials} fits of the halving plan, which decides "
                f"how many trials there are; give --trials {plan.trials} or less (fewer stops the search "
                "early, resumable), or change the plan with --factor, --min-resources"
                + (" or --n-candidates" if algorithm == "halving-random" else "")
            )

    def resolved_options(self, space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
        jobs = settings.get("jobs")
        options: dict[str, Any] = {"cv": cv_folds(settings), "jobs": DEFAULT_JOBS if jobs is None else jobs,
                                   "trainer": fold_trainer(settings), **dict.fromkeys(HALVING_OPTIONS)}
        if settings["algorithm"] in HALVING_ALGORITHMS:
            halving = halving_settings(space, settings)
            options.update(factor=halving.factor, min_resources=halving.min_resources,
                           halving_resource=halving.resource, n_candidates=halving.n_candidates)
        return options

    def planned_trials(self, space: SearchSpace, settings: Mapping[str, Any]) -> int | None:
        """Without ``--trials`` a grid search fits the whole grid, as ``GridSearchCV`` does, and a halving
        search its whole plan (for the ``rows`` resource: the most trials any data gives the plan)."""
        if settings["algorithm"] in HALVING_ALGORITHMS:
            return plan_for(space, settings).trials
        return space.grid_size() if settings["algorithm"] == "grid" else None

    def describe_data(self, space: SearchSpace, settings: Mapping[str, Any], dataset: Dataset) -> list[str]:
        """The halving plan's rungs, which for the ``rows`` resource depend on the data."""
        if settings["algorithm"] not in HALVING_ALGORITHMS:
            return []
        rows, n_classes = data_shape(dataset)
        return describe_plan(plan_for(space, settings, rows=rows, n_classes=n_classes), cv_folds(settings))

    def planned_after_copies(
        self, space: SearchSpace, settings: Mapping[str, Any], copied: int
    ) -> int | None:
        """A grid search fits the candidates not already scored: every copy is a grid candidate (the warm
        start copies no other), so the grid minus the copies (at least 1, the budget's minimum)."""
        planned = self.planned_trials(space, settings)
        return planned if planned is None else max(1, planned - copied)

    def check_warm_start(self, settings: Mapping[str, Any]) -> None:
        if settings["algorithm"] in HALVING_ALGORITHMS:
            # A rung's score is a fit on that rung's resource, which no earlier study's trial is.
            raise UsageError(f"--warm-start works with --algorithm grid or random of the sklearn engine, not "
                             f"{settings['algorithm']}: successive halving fits every rung itself")

    def warm_start_note(self, settings: Mapping[str, Any], copied: int) -> str:
        # The copies are done candidates to _plan (``_histories``): skipped, never fitted.
        return (f"warm start: the {copied} copied candidate(s) keep their fold scores and are not fitted "
                "again; only the other candidates are fitted and use the trial budget")

    def describe(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[str]:
        from .estimators import check_routing, make_estimator

        folds = cv_folds(settings)
        jobs = cv_jobs(settings)
        search = {"grid": "GridSearchCV", "random": "RandomizedSearchCV",
                  "halving-grid": "HalvingGridSearchCV",
                  "halving-random": "HalvingRandomSearchCV"}[settings["algorithm"]]
        # The same check run() makes before any fit: every compiled key is an estimator parameter.
        estimator = make_estimator("binary", resolve_config(space, {}), seed=0)
        check_routing(estimator, list(compiled_space(space, settings["algorithm"])), space.source)
        lines = [
            f"engine sklearn: {search} over SciKeras {_scikeras_class(estimator)}, "
            f"{_scoring_text(space.objective, space.task)} on each held-out fold "
            f"(objective {space.objective})",
        ]
        count = None if settings["algorithm"] in HALVING_ALGORITHMS else candidate_count(space, settings)
        if settings["algorithm"] in HALVING_ALGORITHMS:
            lines.append(f"fitting {folds} folds for each candidate of each rung (the plan follows the data)")
        elif count is None:
            lines.append(f"fitting {folds} folds for each candidate, sampled until the time budget ends")
        else:
            lines.append(
                f"fitting {folds} folds for each of {count} candidates, totalling {count * folds} fits"
            )
            trials = settings.get("trials")
            if trials is not None and trials < count:
                lines.append(f"the trial budget stops the search after {trials} of the {count} candidates; "
                             f"pass --trials {count} to fit them all")
        if jobs > 1:
            threads = f"in processes of {max(1, available_cores() // jobs)} TensorFlow thread(s) each"
            if settings["algorithm"] in HALVING_ALGORITHMS:
                lines.append(f"{min(jobs, folds)} folds fitted at once, {threads}")
            else:
                lines.append(f"{jobs} fits at once, {threads}; the next candidate's folds start as the "
                             "processes free up")
        address = cv_cluster(settings)
        if address is not None:
            from ...executors.cluster import describe

            lines.append(f"{describe(address)}: each fold a task, as many at once as the cluster has "
                         "worker threads")
        if fold_trainer(settings) == "hpsearch":
            lines.append("--trainer hpsearch: each fold trains the same model, loss, optimizer and epochs on "
                         "the same rows outside SciKeras' fit (batches in hpsearch's seeded order), scored "
                         "by the same scorer: scores within noise of GridSearchCV's, not the same to the bit")
        lines.append("folds split the train+validation rows; the test split is never used in the search")
        return lines

    # -- the search -------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        from sklearn.base import is_classifier
        from sklearn.model_selection import check_cv

        from .estimators import check_routing, make_estimator

        settings = ctx.settings
        folds = cv_folds(settings)
        jobs = cv_jobs(settings)
        trainer = fold_trainer(settings)
        dataset = ctx.dataset
        scoring = scoring_for(ctx.study.objective, dataset.task)
        x, y = cv_rows(dataset)
        _check_rows(dataset, y, folds)
        estimator = make_estimator(dataset.task, resolve_config(ctx.space, {}), seed=ctx.seed,
                                   class_weight=dataset.class_weight)
        check_routing(estimator, list(compiled_space(ctx.space, settings["algorithm"])), ctx.space.source)
        splits = list(check_cv(folds, y, classifier=is_classifier(estimator)).split(x, y))
        # As GridSearchCV passes fit parameters: each fold's training rows' weights; scores are unweighted.
        sample_weight = cv_weights(dataset)
        address = cv_cluster(settings)
        if address is not None:
            payload = (x, y, sample_weight, estimator, scoring.name, trainer)
            self._run_on_cluster(ctx, address, splits, scoring, payload)
            return
        halving = settings["algorithm"] in HALVING_ALGORITHMS
        if jobs > 1:
            def processes(stopping: StopSignal | None = None) -> _ProcessFolds:
                return _ProcessFolds(ctx.storage.url, jobs if not halving else min(jobs, folds),
                                     max(1, available_cores() // jobs), x, y, sample_weight, estimator,
                                     scoring.name, trainer, stopping)

            if not halving:
                self._run_in_flight(ctx, splits, scoring, processes, lambda: jobs)
                return
            evaluator: _Folds = processes()
        else:
            evaluator = _InProcessFolds(x, y, sample_weight, estimator, scorer(estimator, scoring.name),
                                        trainer)
        if halving:
            try:
                run_halving(ctx, evaluator, splits, scoring)
            finally:
                evaluator.close()
            return
        runner = TrialRunner(ctx)
        try:
            for candidate, history in self._plan(ctx):
                if ctx.tracker.should_stop():
                    return
                retry_of = history.interrupted[-1].number if history.interrupted else None
                proposal = Proposal(candidate.point, engine_trial_id=str(candidate.index), retry_of=retry_of)
                if len(history.interrupted) >= MAX_INTERRUPTED_ATTEMPTS:
                    result = runner.run(proposal, _given_up(history))
                else:
                    result = runner.run(proposal, _cross_validation(candidate, evaluator, splits, scoring))
                if result.status is RunStatus.BUDGET_REACHED:
                    ctx.tracker.budget_reached()
                    return
        finally:
            evaluator.close()

    def _proposal(self, candidate: Candidate, history: _History) -> Proposal:
        retry_of = history.interrupted[-1].number if history.interrupted else None
        return Proposal(candidate.point, engine_trial_id=str(candidate.index), retry_of=retry_of)

    def _run_on_cluster(self, ctx: RunContext, address: str, splits: list[tuple[np.ndarray, np.ndarray]],
                        scoring: Scoring, payload: tuple) -> None:
        """``--dask``: every fold a task; enough candidates in flight to keep every worker busy."""
        from ...executors.cluster import connect, share, slots

        client = connect(address)
        try:
            data = share(client, payload, "folds")
            self._run_in_flight(ctx, splits, scoring,
                                lambda stopping: _DaskFolds(client, address, data, stopping),
                                lambda: slots(client))
        finally:
            client.close()

    def _run_in_flight(
        self, ctx: RunContext, splits: list[tuple[np.ndarray, np.ndarray]], scoring: Scoring,
        evaluator: Callable[[StopSignal], _Folds], width: Callable[[], int],
    ) -> None:
        """Several candidates in flight, so that ``width()`` fits run at once whatever the folds per
        candidate: the next candidate's folds start while the last folds of the one before still train,
        as ``GridSearchCV(n_jobs=N)`` spreads every (candidate, fold) over its workers.

        Candidates are still proposed, claimed and recorded here, in scikit-learn's order; each one's
        trial runs in a thread that waits on its fold fits (see ``hpsearch.executors.cluster.InFlight``).
        """
        from ...executors.cluster import trials_in_flight

        runner = TrialRunner(ctx)
        budget_reached = False
        lost = True  # a fold process died this pass: plan again, the cut-short candidates first
        folds: _Folds | None = None

        def settle(done: list[tuple[Any, Any]]) -> None:
            nonlocal budget_reached, lost
            for _, future in done:
                status = future.result().status  # re-raises a fatal error
                budget_reached = budget_reached or status is RunStatus.BUDGET_REACHED
                lost = lost or status is RunStatus.INTERRUPTED

        try:
            with trials_in_flight(ctx.study.name) as in_flight:
                folds = evaluator(in_flight.stopping)
                # Each pass plans from the store: a candidate cut short by a dead fold process comes back
                # as a retry (keeping its finished folds), until it is given up.
                while lost and not budget_reached:
                    lost = False
                    for candidate, history in self._plan(ctx):
                        # Candidates in flight: every fit slot busy, plus one so a slot never waits for us.
                        while len(in_flight) >= -(-width() // len(splits)) + 1:
                            settle(in_flight.next_done())
                        if budget_reached or ctx.tracker.should_stop():
                            break
                        proposal = self._proposal(candidate, history)
                        if len(history.interrupted) >= MAX_INTERRUPTED_ATTEMPTS:
                            train = _given_up(history)
                        else:
                            train = _cross_validation(candidate, folds, splits, scoring)
                        in_flight.start(candidate.index,
                                        functools.partial(_claimed_then, runner, proposal, train))
                    while len(in_flight):
                        settle(in_flight.next_done())
                    if ctx.tracker.should_stop():
                        break
        finally:
            if folds is not None:
                folds.close()
            if budget_reached:
                ctx.tracker.budget_reached()

    def _plan(self, ctx: RunContext) -> Iterator[tuple[Candidate, _History]]:
        """Cut-short candidates first (``ctx.retries`` among them), then the rest in scikit-learn's order;
        candidates with a result, or being fitted by another live process, are skipped."""
        histories = _histories(ctx.storage.list_trials(ctx.study.id))
        handled: set[str] = set()
        pending = [(history.interrupted[0].number, key, history) for key, history in histories.items()
                   if history.interrupted and not history.done and not history.running]
        for _, key, history in sorted(pending):
            handled.add(key)
            yield _candidate_of_trial(ctx.space, history.interrupted[-1]), history
        for candidate in candidates(ctx.space, ctx.settings, ctx.seed):
            key = candidate.key
            history = histories.get(key, _History())
            if key in handled or history.done or history.running:
                continue
            handled.add(key)
            yield candidate, history


def _claimed_then(runner: TrialRunner, proposal: Proposal, train: Any, claimed: Any) -> Any:
    """``runner.run`` that signals ``claimed`` once the trial is claimed, before training starts."""

    def train_claimed(attempt: Attempt) -> TrialOutcome:
        claimed()
        return train(attempt)

    return runner.run(proposal, train_claimed)


def _given_up(history: _History) -> Any:
    """A candidate cut short too often is recorded FAILED without fitting it again."""
    numbers = ", ".join(f"#{trial.number}" for trial in history.interrupted)
    reason = (f"given up after {len(history.interrupted)} interrupted attempts ({numbers}): its worker "
              "died or was stopped each time")
    return lambda attempt: TrialOutcome.failed(reason)


def _cross_validation(
    candidate: Candidate, evaluator: _Folds, splits: list[tuple[np.ndarray, np.ndarray]], scoring: Scoring
) -> Any:
    """Training one candidate, as the trial runner calls it: every fold, scored as ``cv_results_``."""
    import numpy as np

    def cross_validate(attempt: Attempt) -> TrialOutcome:
        # A retry keeps the folds its interrupted attempt finished: the unit of resuming is the fold.
        results: list[FoldResult] = _restore_folds(attempt, len(splits))
        todo = sorted(set(range(len(splits))) - {result.fold for result in results})
        with contextlib.closing(evaluator.folds(attempt, candidate, splits, todo)) as fold_results:
            for result in fold_results:
                attempt.partial(result.metrics())  # each fold committed as it ends
                if result.error is not None:
                    # error_score: the candidate fails; its other folds are not fitted
                    return TrialOutcome.failed(result.error)
                results.append(result)
        results.sort(key=lambda result: result.fold)
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
        return TrialOutcome.complete(scoring.sign * mean, metrics)

    return cross_validate


def _restore_folds(attempt: Attempt, n_folds: int) -> list[FoldResult]:
    """The folds the interrupted trial this one retries had finished, recorded again on this trial (scores,
    times and per-epoch curves), so that only the others are fitted."""
    from ...training.runner import FOLDS_RESTORED
    from .estimators import FoldResult

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


# -- fitting folds ----------------------------------------------------------------------------------------
class _Folds:
    """Fits the folds ``todo`` (indices into ``splits``) of one candidate and yields each fold's result as
    it ends."""

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: list[tuple[np.ndarray, np.ndarray]],
        todo: list[int],
    ) -> Iterator[FoldResult]:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _InProcessFolds(_Folds):
    """``--jobs 1``: folds one after another in this process, epochs written by the recorder."""

    def __init__(self, x: Any, y: Any, sample_weight: Any, estimator: Any, scorer: Any,
                 trainer: str = DEFAULT_TRAINER):
        from .estimators import fit_cache

        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.estimator = estimator
        self.scorer = scorer
        self.trainer = trainer
        self.compiled_models = fit_cache(trainer)

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: list[tuple[np.ndarray, np.ndarray]],
        todo: list[int],
    ) -> Iterator[FoldResult]:
        from .estimators import fit_and_score, release_fit

        try:
            for fold in todo:
                train, test = splits[fold]
                yield fit_and_score(
                    self.estimator, candidate.sklearn_params, self.x, self.y, train, test, self.scorer,
                    fold=fold, sample_weight=self.sample_weight,
                    on_epoch=lambda epoch, logs, fold=fold: attempt.record_epoch(epoch, logs, fold=fold),
                    compiled_models=self.compiled_models, trainer=self.trainer,
                )
        finally:
            release_fit(self.trainer)


class _ProcessFolds(_Folds):
    """``--jobs N``: fold fits in N spawned processes, each with ``threads`` TensorFlow threads.

    Spawned, not forked (TensorFlow's runtime does not survive a fork); the processes write their
    epochs themselves, reuse compiled models across the fits of one structure, and die with this one.
    Several candidates' trials may wait on the processes at once (``SklearnEngine._run_in_flight``). A
    fold process that dies (the out-of-memory killer, a signal) breaks the pool: the candidates whose fits
    were queued or running are interrupted (``FitProcessLostError``; which candidate's fit killed it is
    not known), keep their finished folds, and are fitted again with fresh processes in the same run.
    """

    def __init__(self, storage_url: str, processes: int, threads: int, x: Any, y: Any, sample_weight: Any,
                 estimator: Any, scoring: str, trainer: str = DEFAULT_TRAINER,
                 stopping: StopSignal | None = None) -> None:
        from ...executors.cluster import StopSignal

        self.storage_url = storage_url
        self.processes = processes
        self.threads = threads
        self.payload = (x, y, sample_weight, estimator, scoring, trainer)
        self.stopping = stopping or StopSignal()
        self._executor: Any = None
        self._lock = threading.Lock()

    def _pool(self) -> Any:
        import multiprocessing
        import pickle
        from concurrent.futures import ProcessPoolExecutor

        from ...executors.worker import start_fold_process

        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=start_fold_process,
                    # As bytes: unpickling the estimator imports Keras, which the process first slims.
                    initargs=(self.threads, self.storage_url, pickle.dumps(self.payload)),
                )
            return self._executor

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: list[tuple[np.ndarray, np.ndarray]],
        todo: list[int],
    ) -> Iterator[FoldResult]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from .estimators import fit_fold_in_process

        pool = self._pool()
        try:
            futures = [pool.submit(fit_fold_in_process, attempt.record.id, candidate.sklearn_params, fold,
                                   *splits[fold])
                       for fold in todo]
        except BrokenProcessPool as error:  # broken by another candidate's fit, not yet replaced
            self._lost(pool, error)
        pending = set(futures)
        try:
            while pending:
                # Ctrl-C, or another trial's fatal error: this trial stops as interrupted.
                self.stopping.raise_if_set(list(pending))
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool as error:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        self._lost(pool, error)
                    except BaseException:
                        self.stopping.raise_if_set()  # the processes were stopped for the run's end
                        raise
                    yield result
        except GeneratorExit:  # a fold failed: fit no more of this candidate, let running folds end
            for future in futures:
                future.cancel()
            wait(futures)
            raise
        except FitProcessLostError:  # the broken pool is gone already; a fresh one may be serving others
            raise
        except BaseException:  # Ctrl-C: stop the processes now
            self._stop()
            raise

    def _lost(self, pool: Any, error: BaseException) -> NoReturn:
        """The pool broke (a fold process died): shut it down once, whichever candidate sees it first, so
        the next fits get fresh processes; this candidate is interrupted."""
        with self._lock:
            if self._executor is not pool:
                pool = None  # another candidate's thread replaced it already: leave the new one be
            else:
                self._executor = None
        if pool is not None:
            _shut_down(pool)
        raise FitProcessLostError(
            "a fold process died (killed by a signal or the out-of-memory killer) while this candidate "
            "had fits in its pool"
        ) from error

    def _stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            _shut_down(executor)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _shut_down(executor: Any) -> None:
    """Stop a process pool now: its queued fits are cancelled and its processes killed."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=10)


class _DaskFolds(_Folds):
    """``--dask``: a candidate's folds as tasks on a Dask cluster, all submitted at once.

    A task is a pure function of the candidate's parameters and the fold's row indices; the data went to
    the cluster once (``hpsearch.executors.cluster.share``). A fold's epochs come back with its result and are
    recorded here, so Dask workers never need the database. A worker that dies mid-fit costs only that
    fit: the scheduler runs it again on another worker.
    """

    def __init__(self, client: Any, address: str, data: Any, stopping: Any) -> None:
        self.client = client
        self.address = address
        self.data = data
        self.stopping = stopping

    def folds(
        self, attempt: Attempt, candidate: Candidate, splits: list[tuple[np.ndarray, np.ndarray]],
        todo: list[int],
    ) -> Iterator[FoldResult]:
        from ...executors.cluster import completed, fit_fold_task, task_key

        name = f"trial{attempt.record.number}"
        futures = [
            self.client.submit(fit_fold_task, self.data, candidate.sklearn_params, fold, *splits[fold],
                               key=task_key("fold", f"{name}-fold{fold}"), pure=False)
            for fold in todo
        ]
        try:
            for fold_result, epochs in completed(futures, self.address, self.stopping):
                for epoch, logs in epochs:
                    attempt.record_epoch(epoch, logs, fold=fold_result.fold)
                yield fold_result
        finally:  # a fold failed (error_score), Ctrl-C, or the cluster went away: fit no more of them
            for future in futures:
                if not future.done():
                    future.cancel()
