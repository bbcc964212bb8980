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
``hpsearch.executors.folds``; the search sessions the driver runs:
``hpsearch.engines.sklearn.sessions``).

Scikit-learn has no resume; ours comes from our tables (``hpsearch.engines.sklearn.resume``): a candidate
with a result is never fitted again, a cut-short one is run again, first, as a retry that keeps its
finished folds, until the one retry policy gives it up (``hpsearch.retry_policy``). Candidates are
matched by their parameters, so every candidate has at most one result, and trial numbers follow
candidate order, which makes ``hpsearch best`` break ties as
``GridSearchCV.best_params_`` does (the first best candidate). Successive halving is
``hpsearch.engines.sklearn.halving``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace, first_point, resolve_config

from ...errors import UsageError
from ...settings import StudySettings
from ...training.scoring import scoring_for
from ..base import Engine
from .candidates import candidate_count, compiled_space
from .halving import (
    DEFAULT_RESOURCE,
    HALVING_ALGORITHMS,
    HALVING_OPTIONS,
    HalvingSession,
    data_shape,
    describe_plan,
    halving_settings,
    plan_for,
)
from .sessions import CandidatesSession, FoldSearch
from .settings import DEFAULT_JOBS, available_cores, cv_cluster, cv_folds, cv_jobs, fold_trainer

if TYPE_CHECKING:
    from ...data import Dataset
    from ...training.context import RunContext


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


def check_function_options(space: SearchSpace, settings: StudySettings, address: str | None) -> None:
    """Refuse what a training function cannot run under the sklearn engine: a Dask cluster for folds (it
    has none) and successive halving on rows (its data is its own); UsageError naming the option."""
    if address is not None:
        raise UsageError(f"space {space.source} names a training function, which the sklearn engine runs "
                         "in this process without folds; leave out --dask (or unset HPSEARCH_DASK)")
    if cv_jobs(settings) > 1:
        raise UsageError(f"space {space.source} names a training function, which has no folds of hpsearch's "
                         "to fit in parallel; leave out --jobs (the optuna engine runs trials in parallel "
                         "with --workers N)")
    if settings.algorithm in HALVING_ALGORITHMS and halving_settings(space, settings).resource != "epochs":
        raise UsageError(f"space {space.source} names a training function, whose data hpsearch does not "
                         "see; successive halving needs --halving-resource epochs (the epochs its report "
                         "may reach)")


def check_population_options(space: SearchSpace, settings: StudySettings, address: str | None) -> None:
    """Refuse what ``--trainer population`` cannot run with; UsageError naming the option."""
    if space.train is not None:
        raise UsageError(f"space {space.source} names a training function, which trains itself: leave out "
                         "--trainer population")
    resource = settings.halving_resource or DEFAULT_RESOURCE
    if settings.algorithm in HALVING_ALGORITHMS and resource != "epochs":
        raise UsageError("--trainer population runs successive halving on epochs only (a rung's candidates "
                         "train together for the rung's epochs on the same folds); give --halving-resource "
                         "epochs, or --trainer hpsearch for --halving-resource rows")
    if address is not None:
        raise UsageError("--trainer population trains its populations on this machine; leave out --dask (or "
                         "unset HPSEARCH_DASK)")
    if cv_jobs(settings) > 1:
        raise UsageError("--trainer population trains each population in this process on every core; leave "
                         "out --jobs (or give --jobs 1)")


def describe_function_search(space: SearchSpace, settings: StudySettings) -> list[str]:
    """``--dry-run``'s plan of a training-function study under the sklearn engine."""
    search = {"grid": "grid", "random": "random", "halving-grid": "successive halving over the grid",
              "halving-random": "successive halving over random candidates"}[settings.algorithm]
    lines = [f"engine sklearn: {search} of scikit-learn's candidates, trained by training "
             f"function {space.train} (no cross-validation; objective {space.objective})"]
    if settings.algorithm in HALVING_ALGORITHMS:
        plan = plan_for(space, settings)
        lines.append(f"successive halving on epochs: factor {plan.factor}, min_resources "
                     f"{plan.min_resources}, max_resources {plan.max_resources}; {len(plan.rungs)} "
                     f"iterations, {plan.trials} trials")
        for rung in plan.rungs:
            then = ("the best of them is the search's best" if rung is plan.rungs[-1]
                    else f"best {-(-rung.candidates // plan.factor)} go on")
            lines.append(f"  iter {rung.iteration}: {rung.candidates} candidates x {rung.resources} epochs; "
                         f"{then}")
        lines.append("each rung runs the function again from its first epoch with the rung's epochs as "
                     "its budget; trials before the last rung are recorded PRUNED, the last rung's COMPLETE")
    else:
        count = candidate_count(space, settings)
        lines.append("candidates sampled until the time budget ends" if count is None
                     else f"{count} candidates")
    return lines


def _scikeras_class(estimator: Any) -> str:
    """The SciKeras class our estimator extends (``KerasClassifier``, ``KerasRegressor``)."""
    return next(cls.__name__ for cls in type(estimator).__mro__ if cls.__module__.startswith("scikeras"))


class SklearnEngine(Engine):
    """The ``sklearn`` engine: scikit-learn's search classes over SciKeras (or direct) fold fits."""

    name = "sklearn"
    algorithms = ("grid", "random", *HALVING_ALGORITHMS)
    default_algorithm = "grid"
    options = ("cv", "jobs", "dask", "trainer", *HALVING_OPTIONS)

    def check(self, space: SearchSpace, settings: StudySettings) -> None:
        cv_folds(settings)
        cv_jobs(settings)
        fold_trainer(settings)
        address = cv_cluster(settings)
        if fold_trainer(settings) == "population":
            check_population_options(space, settings, address)
        if space.train is not None:
            check_function_options(space, settings, address)
        elif space.task != "auto":
            scoring_for(space.objective, space.task)
        algorithm = settings.algorithm
        if algorithm in ("grid", "halving-grid"):
            space.grid_size()  # raises SpaceError naming a parameter without finite values
        if algorithm not in HALVING_ALGORITHMS:
            given = [key for key in HALVING_OPTIONS if getattr(settings, key) is not None]
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
        trials = settings.trials
        if trials is not None and trials > plan.trials:
            raise UsageError(
                f"--trials {trials} is more than the {plan.trials} fits of the halving plan, which decides "
                f"how many trials there are; give --trials {plan.trials} or less (fewer stops the search "
                "early, resumable), or change the plan with --factor, --min-resources"
                + (" or --n-candidates" if algorithm == "halving-random" else "")
            )

    def resolved_options(self, space: SearchSpace, settings: StudySettings) -> dict[str, Any]:
        jobs = settings.jobs
        options: dict[str, Any] = {"cv": cv_folds(settings), "jobs": DEFAULT_JOBS if jobs is None else jobs,
                                   "trainer": fold_trainer(settings), **dict.fromkeys(HALVING_OPTIONS)}
        if settings.algorithm in HALVING_ALGORITHMS:
            halving = halving_settings(space, settings)
            options.update(factor=halving.factor, min_resources=halving.min_resources,
                           halving_resource=halving.resource, n_candidates=halving.n_candidates)
        return options

    def planned_trials(self, space: SearchSpace, settings: StudySettings) -> int | None:
        """Without ``--trials`` a grid search fits the whole grid, as ``GridSearchCV`` does, and a halving
        search its whole plan (for the ``rows`` resource: the most trials any data gives the plan)."""
        if settings.algorithm in HALVING_ALGORITHMS:
            return plan_for(space, settings).trials
        return space.grid_size() if settings.algorithm == "grid" else None

    def describe_data(self, space: SearchSpace, settings: StudySettings, dataset: Dataset) -> list[str]:
        """The halving plan's rungs, which for the ``rows`` resource depend on the data."""
        if settings.algorithm not in HALVING_ALGORITHMS or space.train is not None:
            return []
        rows, n_classes = data_shape(dataset)
        return describe_plan(plan_for(space, settings, rows=rows, n_classes=n_classes), cv_folds(settings))

    def planned_after_copies(
        self, space: SearchSpace, settings: StudySettings, copied: int
    ) -> int | None:
        """A grid search fits the candidates not already scored: every copy is a grid candidate (the warm
        start copies no other), so the grid minus the copies (at least 1, the budget's minimum)."""
        planned = self.planned_trials(space, settings)
        return planned if planned is None else max(1, planned - copied)

    def check_warm_start(self, settings: StudySettings) -> None:
        if settings.algorithm in HALVING_ALGORITHMS:
            # A rung's score is a fit on that rung's resource, which no earlier study's trial is.
            raise UsageError(f"--warm-start works with --algorithm grid or random of the sklearn engine, not "
                             f"{settings.algorithm}: successive halving fits every rung itself")

    def warm_start_note(self, settings: StudySettings, copied: int) -> str:
        # The copies are done candidates to _plan (``resume.histories``): skipped, never fitted.
        return (f"warm start: the {copied} copied candidate(s) keep their fold scores and are not fitted "
                "again; only the other candidates are fitted and use the trial budget")

    def describe(self, space: SearchSpace, settings: StudySettings) -> list[str]:
        from .estimators import check_routing, make_estimator

        if space.train is not None:
            return describe_function_search(space, settings)
        folds = cv_folds(settings)
        jobs = cv_jobs(settings)
        search = {"grid": "GridSearchCV", "random": "RandomizedSearchCV",
                  "halving-grid": "HalvingGridSearchCV",
                  "halving-random": "HalvingRandomSearchCV"}[settings.algorithm]
        # The same check a run makes before any fit (``FoldSearch.start``): every compiled key is an
        # estimator parameter.
        estimator = make_estimator("binary", resolve_config(space, first_point(space)), seed=0)
        check_routing(estimator, list(compiled_space(space, settings.algorithm)), space.source)
        lines = [
            f"engine sklearn: {search} over SciKeras {_scikeras_class(estimator)}, "
            f"{_scoring_text(space.objective, space.task)} on each held-out fold "
            f"(objective {space.objective})",
        ]
        count = None if settings.algorithm in HALVING_ALGORITHMS else candidate_count(space, settings)
        if settings.algorithm in HALVING_ALGORITHMS:
            lines.append(f"fitting {folds} folds for each candidate of each rung (the plan follows the data)")
        elif count is None:
            lines.append(f"fitting {folds} folds for each candidate, sampled until the time budget ends")
        else:
            lines.append(
                f"fitting {folds} folds for each of {count} candidates, totalling {count * folds} fits"
            )
            trials = settings.trials
            if trials is not None and trials < count:
                lines.append(f"the trial budget stops the search after {trials} of the {count} candidates; "
                             f"pass --trials {count} to fit them all")
        if jobs > 1:
            threads = f"in processes of {max(1, available_cores() // jobs)} TensorFlow thread(s) each"
            if settings.algorithm in HALVING_ALGORITHMS:
                lines.append(f"{min(jobs, folds)} folds fitted at once, {threads}")
            else:
                lines.append(f"{jobs} fits at once, {threads}; the next candidate's folds start as the "
                             "processes free up")
        address = cv_cluster(settings)
        if address is not None:
            from ...executors.cluster import describe

            lines.append(f"{describe(address)}: each fold a task, as many at once as the cluster has "
                         "worker threads")
        if fold_trainer(settings) == "population":
            lines.append("--trainer population: the candidates' folds train as populations (members of one "
                         "depth and batch size as one stacked model, each on its fold's rows in hpsearch's "
                         "seeded order), scored by the same scorer: scores within noise of --trainer "
                         "hpsearch's")
        if fold_trainer(settings) == "hpsearch":
            lines.append("--trainer hpsearch: each fold trains the same model, loss, optimizer and epochs on "
                         "the same rows outside SciKeras' fit (batches in hpsearch's seeded order), scored "
                         "by the same scorer: scores within noise of GridSearchCV's, not the same to the bit")
        lines.append("folds split the train+validation rows; the test split is never used in the search")
        return lines


    # -- the search -------------------------------------------------------------------------------
    def session(self, ctx: RunContext) -> FoldSearch:
        """The run's search: successive halving, or grid or random candidates (several in flight with
        ``--jobs N`` or on a Dask cluster, ``--dask``)."""
        if ctx.settings.algorithm in HALVING_ALGORITHMS:
            return HalvingSession(ctx)
        return CandidatesSession(ctx)
