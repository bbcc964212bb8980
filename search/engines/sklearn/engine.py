"""The scikit-learn engine: GridSearchCV and RandomizedSearchCV over a SciKeras wrapper, resumable.

What scikit-learn would do, fold by fold, with every fold recorded as it ends:

- candidates come from ``ParameterGrid(to_param_grid(space))`` (``--algorithm grid``) or
  ``ParameterSampler(to_param_distributions(space), n_iter=--trials, random_state=--seed)``
  (``--algorithm random``), the very iterators ``GridSearchCV`` and ``RandomizedSearchCV`` use, so the
  candidates and their order are theirs (``hpsearch.engines.sklearn.candidates``);
- folds come from ``check_cv(--cv, y, classifier=...)`` over the dataset's train+validation rows (the
  test split is never seen), as ``GridSearchCV(cv=K)`` splits them: ``StratifiedKFold`` for
  classification, ``KFold`` for regression, unshuffled;
- each (candidate, fold) is ``clone(estimator).set_params(**candidate).fit(train)`` then the scorer on
  the held-out fold; an error fails the candidate (``error_score``) and the search goes on. With
  ``--trainer hpsearch`` the fit is the same training outside SciKeras' ``fit`` (batches in our seeded
  order, see ``hpsearch.training.direct_fit``), scored by the same scorer.

A candidate is one trial: its value is the mean fold score in the objective's own sense (see
``scoring_for``), its metrics hold ``cv_results_``'s numbers (``split{k}_test_score``, ``mean_test_score``,
``std_test_score``, fit and score times), and its curves hold every fold's epochs as ``split{k}_<metric>``
(``hpsearch.engines.sklearn.cross_validation``; where the folds are fitted:
``hpsearch.executors.folds``).

Scikit-learn has no resume; ours comes from our tables (``hpsearch.engines.sklearn.resume``): a candidate
with a result is never fitted again, a cut-short one is run again, first, as a retry that keeps its
finished folds, until it is given up. Candidates are matched by their parameters, so every candidate has
at most one result, and trial numbers follow candidate order, which makes ``hpsearch best`` break ties as
``GridSearchCV.best_params_`` does (the first best candidate). Successive halving is
``hpsearch.engines.sklearn.halving``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace, resolve_config

from ...errors import UsageError
from ...executors.folds import DaskFitter, FoldFitter, InProcessFitter, ProcessFitter, Splits
from ...training.runner import Attempt, Proposal, RunStatus, TrialOutcome, TrialRunner
from ...training.scoring import Scoring, scorer, scoring_for
from ..base import Engine, RunContext
from .candidates import (
    UNBOUNDED,
    Candidate,
    candidate_count,
    candidate_key,
    candidate_of_trial,
    candidates,
    compiled_space,
)
from .cross_validation import check_rows, cross_validation, cv_rows, cv_weights
from .halving import (
    HALVING_ALGORITHMS,
    HALVING_OPTIONS,
    data_shape,
    describe_plan,
    halving_settings,
    plan_for,
    run_halving,
)
from .resume import CandidateHistory, Fit, fit_or_give_up, histories, run_candidate
from .settings import DEFAULT_JOBS, available_cores, cv_cluster, cv_folds, cv_jobs, fold_trainer

if TYPE_CHECKING:
    from ...data import Dataset
    from ...executors.cluster import StopSignal


def _scoring_text(objective: str, task: str) -> str:
    """How ``describe`` names the scorer: one name, or for ``--task auto`` the scorer of each task kind."""
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


class SklearnEngine(Engine):
    """The ``sklearn`` engine: scikit-learn's search classes over SciKeras (or direct) fold fits."""

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
        # The copies are done candidates to _plan (``resume.histories``): skipped, never fitted.
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
        """Run (or resume) the study's search: on a Dask cluster (``--dask``), with several candidates in
        flight (``--jobs N``), by successive halving, or one candidate after another."""
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
        check_rows(dataset, y, folds)
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
            def processes(stopping: StopSignal | None = None) -> ProcessFitter:
                return ProcessFitter(jobs if not halving else min(jobs, folds),
                                     max(1, available_cores() // jobs), x, y, sample_weight, estimator,
                                     scoring.name, trainer, stopping)

            if not halving:
                self._run_in_flight(ctx, splits, scoring, processes, lambda: jobs)
                return
            fitter: FoldFitter = processes()
        else:
            fitter = InProcessFitter(x, y, sample_weight, estimator, scorer(estimator, scoring.name), trainer)
        try:
            if halving:
                run_halving(ctx, fitter, splits, scoring)
            else:
                self._run_one_at_a_time(ctx, fitter, splits, scoring)
        finally:
            fitter.close()

    def _proposal(self, candidate: Candidate, history: CandidateHistory) -> Proposal:
        return Proposal(candidate.point, engine_trial_id=str(candidate.index), retry_of=history.retry_of)

    def _run_one_at_a_time(
        self, ctx: RunContext, fitter: FoldFitter, splits: Splits, scoring: Scoring
    ) -> None:
        """``--jobs 1``: each candidate's trial in this thread, in ``_plan``'s order, until the budget or a
        stop ends the search."""
        runner = TrialRunner(ctx)
        for candidate, history in self._plan(ctx):
            if ctx.tracker.should_stop():
                return
            result = run_candidate(runner, self._proposal(candidate, history), history,
                                   cross_validation(candidate, fitter, splits, scoring))
            if result.status is RunStatus.BUDGET_REACHED:
                ctx.tracker.budget_reached()
                return

    def _run_on_cluster(self, ctx: RunContext, address: str, splits: Splits, scoring: Scoring,
                        payload: tuple) -> None:
        """``--dask``: every fold a task; enough candidates in flight to keep every worker busy."""
        from ...executors.cluster import connect, share, slots

        client = connect(address)
        try:
            data = share(client, payload, "folds")
            self._run_in_flight(ctx, splits, scoring,
                                lambda stopping: DaskFitter(client, address, data, stopping),
                                lambda: slots(client))
        finally:
            client.close()

    def _run_in_flight(
        self, ctx: RunContext, splits: Splits, scoring: Scoring,
        fitter_for: Callable[[StopSignal], FoldFitter], width: Callable[[], int],
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
        fitter: FoldFitter | None = None

        def settle(done: list[tuple[Any, Any]]) -> None:
            nonlocal budget_reached, lost
            for _, future in done:
                status = future.result().status  # re-raises a fatal error
                budget_reached = budget_reached or status is RunStatus.BUDGET_REACHED
                lost = lost or status is RunStatus.INTERRUPTED

        try:
            with trials_in_flight(ctx.study.name) as in_flight:
                fitter = fitter_for(in_flight.stopping)
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
                        train = fit_or_give_up(history, cross_validation(candidate, fitter, splits, scoring))
                        in_flight.start(candidate.index, functools.partial(
                            _claimed_then, runner, self._proposal(candidate, history), train))
                    while len(in_flight):
                        settle(in_flight.next_done())
                    if ctx.tracker.should_stop():
                        break
        finally:
            if fitter is not None:
                fitter.close()
            if budget_reached:
                ctx.tracker.budget_reached()

    def _plan(self, ctx: RunContext) -> Iterator[tuple[Candidate, CandidateHistory]]:
        """Cut-short candidates first (``ctx.retries`` among them), then the rest in scikit-learn's order;
        candidates with a result, or being fitted by another live process, are skipped."""
        found = histories(ctx.storage.list_trials(ctx.study.id), lambda trial: candidate_key(trial.params))
        handled: set[str] = set()
        pending = [(history.interrupted[0].number, key, history) for key, history in found.items()
                   if history.interrupted and not history.done and not history.running]
        for _, key, history in sorted(pending):
            handled.add(key)
            yield candidate_of_trial(ctx.space, history.interrupted[-1]), history
        trials = ctx.settings.get("trials")
        n_iter = UNBOUNDED if trials is None else int(trials)
        for candidate in candidates(ctx.space, ctx.settings["algorithm"], n_iter, ctx.seed):
            key = candidate.key
            history = found.get(key, CandidateHistory())
            if key in handled or history.done or history.running:
                continue
            handled.add(key)
            yield candidate, history


def _claimed_then(runner: TrialRunner, proposal: Proposal, train: Fit, claimed: Callable[[], None]) -> Any:
    """``runner.run`` that signals ``claimed`` once the trial is claimed, before training starts."""

    def train_claimed(attempt: Attempt) -> TrialOutcome:
        claimed()
        return train(attempt)

    return runner.run(proposal, train_claimed)
