"""The scikit-learn engine's search sessions: candidates in scikit-learn's order, each cross-validated.

``FoldSearch`` sets up what every scikit-learn search fits with, as ``GridSearchCV.fit`` would before its
first candidate: the estimator (its routing checked), the folds, the scorer, and where the folds are
fitted (this process, ``--jobs N`` processes, or a Dask cluster: ``hpsearch.executors.folds``).
``CandidatesSession`` proposes grid or random candidates (``candidates``), cut-short ones first; with
``--jobs N`` or ``--dask`` its tasks are in flight several at once, so that every fit slot stays busy
whatever the folds per candidate, as ``GridSearchCV(n_jobs=N)`` spreads every (candidate, fold) over its
workers. Successive halving is ``halving.HalvingSession``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import first_point, resolve_config
from hpsearch.storage import TrialRecord

from ...executors.folds import (
    DaskFitter,
    FoldFitter,
    InProcessFitter,
    PopulationFitter,
    ProcessFitter,
    Splits,
)
from ...seeds import candidate_seed
from ...training.runner import Attempt, Proposal, RunResult, TrialOutcome
from ...training.scoring import Scoring, scorer, scoring_for
from ..session import SearchSession, Task
from .candidates import UNBOUNDED, Candidate, candidate_key, candidate_of_trial, candidates, compiled_space
from .cross_validation import candidates_together, check_rows, cross_validation, cv_rows, cv_weights
from .resume import CandidateHistory, Fit, histories
from .settings import available_cores, cv_cluster, cv_folds, cv_jobs, fold_trainer

if TYPE_CHECKING:
    from ...executors.cluster import StopSignal
    from ...training.context import RunContext


class FoldSearch(SearchSession):
    """What every scikit-learn search of one run fits with; see the module docstring.

    Args:
        ctx: the run.
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.fitter: FoldFitter | None = None
        self.splits: Splits = []
        self.scoring: Scoring | None = None
        self.client: Any = None

    def processes(self, jobs: int) -> int:
        """Fold processes to start with ``--jobs`` ``jobs``."""
        return jobs

    def start(self, stopping: StopSignal | None) -> None:
        """Check the estimator's routing, split the folds, start the fitter.

        Raises:
            UsageError: a tuned parameter is no estimator parameter; ``distributed`` is missing.
            DataError: a class has fewer rows than folds.
            SearchFailedError: the Dask scheduler cannot be reached.
        """
        ctx = self.ctx
        if ctx.space.train is not None:
            # The user's training function: no estimator, no folds (see ``function_fit``), and no Keras.
            return
        from sklearn.base import is_classifier
        from sklearn.model_selection import check_cv

        from .estimators import check_routing, make_estimator

        settings = ctx.settings
        folds = cv_folds(settings)
        jobs = cv_jobs(settings)
        trainer = fold_trainer(settings)
        dataset = ctx.dataset
        scoring = self.scoring = scoring_for(ctx.study.objective, dataset.task)
        x, y = cv_rows(dataset)
        check_rows(dataset, y, folds)
        base = resolve_config(ctx.space, first_point(ctx.space))
        estimator = make_estimator(dataset.task, base, seed=ctx.seed, class_weight=dataset.class_weight)
        check_routing(estimator, list(compiled_space(ctx.space, settings.algorithm)), ctx.space.source)
        self.splits = list(check_cv(folds, y, classifier=is_classifier(estimator)).split(x, y))
        # As GridSearchCV passes fit parameters: each fold's training rows' weights; scores are unweighted.
        sample_weight = cv_weights(dataset)
        address = cv_cluster(settings)
        if address is not None:
            from ...executors.cluster import connect, share

            self.client = connect(address)
            data = share(self.client, (x, y, sample_weight, estimator, scoring.name, trainer), "folds")
            self.fitter = DaskFitter(self.client, address, data, stopping)
        elif trainer == "population":
            self.fitter = PopulationFitter(x, y, sample_weight, estimator, scorer(estimator, scoring.name))
        elif jobs > 1:
            threads = max(1, available_cores() // jobs)
            self.fitter = ProcessFitter(self.processes(jobs), threads, x, y, sample_weight,
                                        estimator, scoring.name, trainer, stopping)
        else:
            self.fitter = InProcessFitter(x, y, sample_weight, estimator, scorer(estimator, scoring.name),
                                          trainer)

    def close(self) -> None:
        """Stop the fold processes and disconnect from the cluster, however the run ended."""
        if self.fitter is not None:
            self.fitter.close()
        if self.client is not None:
            self.client.close()


class CandidatesSession(FoldSearch):
    """Grid or random candidates in scikit-learn's order, cut-short ones first, skipping those with a
    result or being fitted by another live process."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        # Fold processes or Dask tasks honour a stop signal: candidates wait on them in threads.
        self.threaded = ctx.space.train is None and (cv_cluster(ctx.settings) is not None
                                                     or cv_jobs(ctx.settings) > 1)
        #: Cut-short candidates to fit again first, with the trial each retries.
        self.queue: list[tuple[Candidate, int]] = []
        #: Candidates proposed, or queued, in this run (by key).
        self.handled: set[str] = set()
        self.plan: Iterator[tuple[Candidate, CandidateHistory]] = iter(())

    @property
    def width(self) -> int:
        """Candidates in flight: every fit slot busy, plus one so a slot never waits for a proposal."""
        if not self.threaded or not self.splits:
            return 1
        if self.client is not None:
            from ...executors.cluster import slots

            fits = slots(self.client)
        else:
            fits = cv_jobs(self.ctx.settings)
        return -(-fits // len(self.splits)) + 1

    def start(self, stopping: StopSignal | None) -> None:
        super().start(stopping)
        self.plan = self._plan()

    def retry(self, trials: list[TrialRecord]) -> None:
        for trial in trials:
            key = candidate_key(trial.params)
            if any(candidate.key == key for candidate, _ in self.queue):
                continue
            self.handled.add(key)
            self.queue.append((candidate_of_trial(self.ctx.space, trial), trial.number))

    def propose(self, room: int | None) -> list[Task] | None:
        """The next candidate (a cut-short one first); with ``--trainer population``, up to a population's
        worth of candidates (``MAX_MEMBERS`` fits), those of one depth and batch size trained together."""
        tasks: list[Task] = []
        limit = 1
        if self.fitter is not None and isinstance(self.fitter, PopulationFitter):
            from ...training.fold_population import MAX_MEMBERS

            limit = max(1, MAX_MEMBERS // max(1, len(self.splits)))
            limit = limit if room is None else max(1, min(limit, room))
        while len(tasks) < limit:
            task = self._next_task()
            if task is None:
                break
            tasks.append(task)
            if task.proposal.retry_of is not None:
                break  # a retry trains alone (it keeps its finished folds)
        return tasks or None

    def _next_task(self) -> Task | None:
        if self.queue:
            candidate, retry_of = self.queue.pop(0)
        else:
            planned = next(self.plan, None)
            if planned is None:
                return None
            candidate, history = planned
            retry_of = history.retry_of
        proposal = Proposal(candidate.point, engine_trial_id=str(candidate.index), retry_of=retry_of)
        if self.ctx.space.train is not None:
            return Task(proposal, function_fit(self.ctx, candidate, None), handle=candidate)
        assert self.fitter is not None and self.scoring is not None
        train = cross_validation(candidate, self.fitter, self.splits, self.scoring)
        if not isinstance(self.fitter, PopulationFitter):
            return Task(proposal, train, handle=candidate)
        from ...training.population_model import population_key

        key = population_key(resolve_config(self.ctx.space, candidate.point))
        return Task(proposal, train, handle=candidate, pack_key=None if key is None else ("folds", key),
                    train_together=self._train_together)

    def _train_together(self, tasks: list[Task], attempts: list[Attempt]) -> list[TrialOutcome | Exception]:
        """The claimed candidates of ``tasks`` as populations of their folds (``--trainer population``)."""
        assert isinstance(self.fitter, PopulationFitter) and self.scoring is not None
        by_id = {task.proposal.engine_trial_id: task.handle for task in tasks}
        return candidates_together(by_id, self.fitter, self.splits, self.scoring)(attempts)

    def learn(self, task: Task, result: RunResult) -> None:
        """Nothing to learn: candidates come from a fixed grid or sampler (scikit-learn's own)."""

    def _plan(self) -> Iterator[tuple[Candidate, CandidateHistory]]:
        """Cut-short candidates first, then the rest in scikit-learn's order; candidates with a result,
        being fitted by another live process, or already handled in this run are skipped (checked as each
        comes, so a retry queued meanwhile is not proposed twice)."""
        ctx = self.ctx
        found = histories(ctx.storage.list_trials(ctx.study.id), lambda trial: candidate_key(trial.params))
        pending = [(history.interrupted[0].number, key, history) for key, history in found.items()
                   if history.interrupted and not history.done and not history.running]
        for _, key, history in sorted(pending):
            if key in self.handled:
                continue
            self.handled.add(key)
            yield candidate_of_trial(ctx.space, history.interrupted[-1]), history
        trials = ctx.settings.trials
        n_iter = UNBOUNDED if trials is None else int(trials)
        for candidate in candidates(ctx.space, ctx.settings.algorithm, n_iter, candidate_seed(ctx.seed)):
            key = candidate.key
            history = found.get(key, CandidateHistory())
            if key in self.handled or history.done or history.running:
                continue
            self.handled.add(key)
            yield candidate, history


def function_fit(ctx: RunContext, candidate: Candidate, epochs: int | None) -> Fit:
    """A candidate trained by the space's training function for ``epochs`` (None: the space's ``epochs``),
    with no cross-validation (the function does its own, if any).

    Its metrics hold ``mean_test_score``, the value in scikit-learn's sense (greater is better: the
    objective's value, negated for an objective to minimise), which successive halving ranks by.
    """
    config = resolve_config(ctx.space, candidate.point)
    sign = 1.0 if ctx.study.direction == "maximize" else -1.0

    def fit(attempt: Attempt) -> TrialOutcome:
        outcome = attempt.train_function(config, epochs=epochs)
        if outcome.value is None:
            return outcome
        metrics = {**outcome.metrics, "mean_test_score": sign * outcome.value}
        return TrialOutcome(outcome.state, outcome.value, metrics, outcome.error)

    return fit
