"""Successive halving for the scikit-learn engine: ``HalvingGridSearchCV`` and ``HalvingRandomSearchCV``.

What scikit-learn's ``BaseSuccessiveHalving._run_search`` does, rung by rung, with every fit recorded:

- the first rung's candidates are ``ParameterGrid(param_grid)`` (``halving-grid``) or
  ``ParameterSampler(param_distributions, n_candidates, random_state=--seed)`` (``halving-random``);
- the plan (:func:`halving_plan`) is scikit-learn's arithmetic: ``n_required_iterations``,
  ``min_resources`` (``exhaust``, ``smallest`` or a number), ``n_possible_iterations``, and rung ``i``
  gives each candidate ``min(factor**i * min_resources, max_resources)`` of the resource;
- the resource is ``epochs`` (the estimator's ``epochs`` set to the rung's value; the most is the space's
  fixed ``epochs``) or ``rows`` (each fold's training and held-out rows subsampled to the rung's share of
  the train+validation rows, as ``_SubsampleMetaSplitter`` does, seeded by ``--seed``);
- every candidate of a rung is cross-validated on the same folds as ``--algorithm grid`` and the best
  ``ceil(n / factor)`` by mean test score go on (``_top_k``: failed candidates, whose score is NaN, last).

Each (rung, candidate) is one trial through the one trial runner. A candidate carried to the next rung
keeps one chain: its next trial names the previous one in ``parent_number``. As scikit-learn does, a rung
fits from scratch with more resource; it does not continue the previous rung's weights. Trials of rungs
before the last are recorded PRUNED (scored with less than the plan's last resource, like a trial a
pruner stops at a rung) with their value; the last rung's trials are COMPLETE, so ``hpsearch best``
picks what ``best_params_`` picks: the best mean test score of the last iteration. Every trial's metrics
hold ``iter`` and ``n_resources`` as ``cv_results_`` does.

With ``--trainer population`` (epochs only) a rung's pending fits are proposed together, up to a
population's worth, and train as populations of candidates x folds (``candidates_together``): every
candidate of a rung trains for the rung's epochs; each is recorded as a lone fit is.

Resume needs no state of its own: the trials of a rung are found by (iteration, parameters) in our
tables, the next rung's candidates follow from their stored scores, and only fits without a result are
run (an interrupted one first, as a retry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import DEFAULTS, SearchSpace
from hpsearch.storage import TrialRecord, TrialState

from ...errors import UsageError
from ...executors.folds import PopulationFitter, Splits
from ...seeds import candidate_seed
from ...settings import StudySettings
from ...training.runner import Attempt, Proposal, RunResult, RunStatus, TrialOutcome
from ..session import Task, refuse_other_workers
from .candidates import Candidate, candidate_key, candidates, parameter_sampler
from .cross_validation import candidates_together, cross_validation
from .resume import CandidateHistory, Fit, histories
from .sessions import FoldSearch, function_fit
from .settings import cv_folds

if TYPE_CHECKING:
    from ...data import Dataset
    from ...executors.cluster import StopSignal
    from ...training.context import RunContext

HALVING_ALGORITHMS = ("halving-grid", "halving-random")
#: Settings only the halving algorithms read (``factor`` is shared with KerasTuner's Hyperband).
HALVING_OPTIONS = ("factor", "min_resources", "halving_resource", "n_candidates")
RESOURCES = ("epochs", "rows")
DEFAULT_FACTOR = 3
DEFAULT_RESOURCE = "epochs"
#: scikit-learn's defaults: HalvingGridSearchCV(min_resources="exhaust"), HalvingRandomSearchCV(
#: min_resources="smallest", n_candidates="exhaust"); both "exhaust" at once is refused, as there.
MIN_RESOURCES_WORDS = ("exhaust", "smallest")


# -- settings ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HalvingSettings:
    resource: str
    factor: int
    min_resources: int | str
    #: ``halving-random`` only: first-rung candidates, or "exhaust" (``max_resources // min_resources``).
    n_candidates: int | str | None


def halving_settings(space: SearchSpace, settings: StudySettings) -> HalvingSettings:
    """The halving options with scikit-learn's defaults filled in; UsageError naming what must hold."""
    algorithm = settings.algorithm
    resource = settings.halving_resource or DEFAULT_RESOURCE
    if resource not in RESOURCES:
        raise UsageError(f"--halving-resource must be one of {', '.join(RESOURCES)}, but got '{resource}'")
    factor = settings.factor
    factor = DEFAULT_FACTOR if factor is None else factor
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise UsageError(f"--factor must be an integer of at least 2 (candidates kept: 1 in factor), "
                         f"but got {factor}")
    default_min = "exhaust" if algorithm == "halving-grid" else "smallest"
    min_resources = settings.min_resources
    min_resources = default_min if min_resources is None else min_resources
    _check_count("--min-resources", min_resources, MIN_RESOURCES_WORDS)
    n_candidates = settings.n_candidates
    if algorithm == "halving-grid":
        if n_candidates is not None:
            raise UsageError("--n-candidates applies to --algorithm halving-random only; halving-grid starts "
                             "with every candidate of the grid")
    else:
        n_candidates = "exhaust" if n_candidates is None else n_candidates
        _check_count("--n-candidates", n_candidates, ("exhaust",))
        if n_candidates == "exhaust" and min_resources == "exhaust":
            raise UsageError("--n-candidates and --min-resources cannot both be exhaust: each is computed "
                             "from the other; give a number for one of them")
        if n_candidates == "exhaust" and resource == "rows":
            raise UsageError("--algorithm halving-random with --halving-resource rows needs --n-candidates "
                             "N: 'exhaust' would size the trial budget from the data's row count, which is "
                             "not known before the data is read")
    if resource == "epochs" and "epochs" in space.params:
        raise UsageError(f"space {space.source} tunes 'epochs', but successive halving on epochs decides how "
                         "long each candidate trains; fix epochs in the space (the last rung's most) or use "
                         "--halving-resource rows")
    return HalvingSettings(resource, factor, min_resources, n_candidates)


def _check_count(flag: str, value: Any, words: Sequence[str]) -> None:
    if value in words:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{flag} must be a positive integer or {' or '.join(words)}, but got {value}")


def space_epochs(space: SearchSpace) -> int:
    """The most epochs a candidate trains: the space's fixed ``epochs`` (the builder's default if none)."""
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))


# -- the plan ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rung:
    """One iteration: ``candidates`` cross-validated with ``resources`` epochs (or rows) each."""

    iteration: int
    candidates: int
    resources: int


@dataclass(frozen=True)
class HalvingPlan:
    resource: str
    factor: int
    min_resources: int
    max_resources: int
    n_required_iterations: int
    n_possible_iterations: int
    rungs: tuple[Rung, ...]

    @property
    def trials(self) -> int:
        return sum(rung.candidates for rung in self.rungs)


def halving_plan(
    n_candidates: int, *, factor: int, min_resources: int | str, max_resources: int, smallest: int
) -> HalvingPlan:
    """scikit-learn's successive-halving schedule (``aggressive_elimination=False``).

    ``smallest`` is the ``min_resources="smallest"`` value: 1 epoch, or ``2 * folds`` rows (times the
    number of classes for a classifier). The arithmetic, floating-point logarithms included, is
    ``BaseSuccessiveHalving._run_search``'s, so the rungs are the ones scikit-learn would run.
    """
    if n_candidates < 1:
        raise UsageError("successive halving needs at least one candidate, but the space gives none")
    n_required = 1 + math.floor(math.log(n_candidates, factor))
    if min_resources == "exhaust":
        least = max(smallest, max_resources // factor ** (n_required - 1))
    elif min_resources == "smallest":
        least = smallest
    else:
        least = int(min_resources)
    if least > max_resources:
        raise UsageError(f"--min-resources {least} is more than the most a candidate gets ({max_resources}); "
                         f"give --min-resources {max_resources} or less")
    n_possible = 1 + math.floor(math.log(max_resources // least, factor))
    rungs, count = [], n_candidates
    for iteration in range(min(n_possible, n_required)):
        rungs.append(Rung(iteration, count, min(int(factor**iteration * least), max_resources)))
        count = math.ceil(count / factor)
    return HalvingPlan(resource="", factor=factor, min_resources=least, max_resources=max_resources,
                       n_required_iterations=n_required, n_possible_iterations=n_possible, rungs=tuple(rungs))


def _first_candidate_count(space: SearchSpace, settings: StudySettings, halving: HalvingSettings,
                           max_resources: int, smallest: int) -> int:
    if settings.algorithm == "halving-grid":
        return space.grid_size()
    n = halving.n_candidates
    if n == "exhaust":  # scikit-learn: max_resources_ // min_resources_ before "exhaust" adjusts the latter
        least = smallest if halving.min_resources == "smallest" else int(halving.min_resources)
        n = max(1, max_resources // least)
    return len(parameter_sampler(space, int(n), candidate_seed(settings.seed)))


def plan_for(
    space: SearchSpace, settings: StudySettings, *, rows: int | None = None, n_classes: int | None = None
) -> HalvingPlan:
    """The study's plan. For ``rows`` the data decides ``max_resources`` (its train+validation rows) and
    ``smallest`` (``2 * folds`` rows per class); without the data (``rows`` None) the plan assumes every
    rung ``n_required_iterations`` allows, an upper bound of the trials the data's plan has."""
    halving = halving_settings(space, settings)
    if halving.resource == "epochs":
        max_resources, smallest = space_epochs(space), 1
    elif rows is None:
        max_resources, smallest = 2**62, 1  # unknown: as many rungs as the candidates ask for
    else:
        max_resources = rows
        smallest = cv_folds(settings) * 2 * (n_classes if n_classes and n_classes > 1 else 1)
    count = _first_candidate_count(space, settings, halving, max_resources, smallest)
    plan = halving_plan(count, factor=halving.factor, min_resources=halving.min_resources,
                        max_resources=max_resources, smallest=smallest)
    return HalvingPlan(halving.resource, plan.factor, plan.min_resources, plan.max_resources,
                       plan.n_required_iterations, plan.n_possible_iterations, plan.rungs)


def data_shape(dataset: Dataset) -> tuple[int, int | None]:
    """(train+validation rows, classes or None for regression): what a ``rows`` plan depends on."""
    rows = len(dataset.y_train) + len(dataset.y_val)
    return rows, (dataset.n_classes if dataset.task != "regression" else None)


def describe_plan(plan: HalvingPlan, folds: int) -> list[str]:
    unit = "epochs" if plan.resource == "epochs" else "rows"
    lines = [
        f"successive halving on {unit}: factor {plan.factor}, min_resources {plan.min_resources}, "
        f"max_resources {plan.max_resources}; {len(plan.rungs)} iterations ({plan.n_required_iterations} "
        f"required, {plan.n_possible_iterations} possible), {plan.trials} trials, "
        f"{plan.trials * folds} fits",
    ]
    for rung in plan.rungs:
        each = (f"{rung.resources} epochs" if unit == "epochs"
                else f"{rung.resources} of {plan.max_resources} rows")
        keep = math.ceil(rung.candidates / plan.factor)
        then = (f"best {keep} by mean test score go on" if rung is not plan.rungs[-1]
                else "the best of them is the search's best")
        lines.append(f"  iter {rung.iteration}: {rung.candidates} candidates x {each}, {folds} folds each "
                     f"= {rung.candidates * folds} fits; {then}")
    lines.append("each rung fits from scratch with its resource (as scikit-learn does); trials before the "
                 "last rung are recorded PRUNED, the last rung's COMPLETE")
    return lines


# -- the search -------------------------------------------------------------------------------------------
def top_k(candidates: Sequence[Candidate], scores: Sequence[float], k: int) -> list[Candidate]:
    """scikit-learn's ``_top_k``: the ``k`` best by mean test score, NaN (failed) scores ranked lowest, in
    ascending score order (the next rung's order)."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    order = np.roll(np.argsort(values), np.count_nonzero(np.isnan(values)))
    return [candidates[index] for index in order[-k:]]


def rung_of(trial: TrialRecord) -> int | None:
    """The iteration of a halving trial, from its engine trial id ``"<iteration>:<candidate index>"``."""
    iteration, _, _ = (trial.engine_trial_id or "").partition(":")
    return int(iteration) if iteration.isdigit() else None


def _rung_candidate(trial: TrialRecord) -> tuple[int, str] | None:
    """Which (iteration, candidate key) a stored trial fitted; None for a trial of no rung."""
    iteration = rung_of(trial)
    return None if iteration is None else (iteration, candidate_key(trial.params))


def _score(trial: TrialRecord) -> float:
    """``mean_test_score`` in scikit-learn's sense (NaN for a failed candidate, as ``error_score``)."""
    value = trial.metrics.get("mean_test_score")
    if trial.state is TrialState.FAILED or value is None:
        return math.nan
    return float(value)


def first_candidates(space: SearchSpace, settings: StudySettings, count: int) -> list[Candidate]:
    """The first rung's candidates, in the order scikit-learn's halving searches fit them: the whole grid,
    or ``count`` samples (``n_candidates``)."""
    return list(candidates(space, settings.algorithm, count, candidate_seed(settings.seed)))


def rung_splits(splits: Splits, plan: HalvingPlan, rung: Rung, seed: int) -> Splits:
    """The folds of a rung: the study's folds, subsampled for a ``rows`` rung as scikit-learn's
    ``_SubsampleMetaSplitter(fraction=n_resources / n_samples, subsample_test=True)`` does."""
    if plan.resource != "rows" or rung.resources >= plan.max_resources:
        return splits
    from sklearn.utils import resample

    fraction = rung.resources / plan.max_resources
    return [
        (resample(train, replace=False, random_state=seed, n_samples=int(fraction * len(train))),
         resample(test, replace=False, random_state=seed, n_samples=int(fraction * len(test))))
        for train, test in splits
    ]


class HalvingSession(FoldSearch):
    """Runs (or resumes) the study's halving plan, rung by rung, one fit at a time; see the module
    docstring. A rung's survivors are decided once every candidate of the rung has its result."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.plan: HalvingPlan | None = None
        self.rung_index = 0
        self.current: list[Candidate] = []
        self.found: dict[Any, CandidateHistory] = {}
        #: Candidate key -> number of its trial on the previous rung (the chain each carried one keeps).
        self.parents: dict[str, int] = {}
        #: The current rung's results so far, by candidate key.
        self.results: dict[str, TrialRecord] = {}
        #: The current rung's fits still to propose: (candidate, the trial it retries or None).
        self.pending: list[tuple[Candidate, int | None]] = []
        self.folds: Splits = []
        #: Another process holds a fit of the rung: its survivors cannot be decided here.
        self.blocked = False

    def processes(self, jobs: int) -> int:
        return min(jobs, cv_folds(self.ctx.settings))

    def start(self, stopping: StopSignal | None) -> None:
        """Refuse a second worker, start the fitter, find where the plan stands.

        Raises:
            UsageError: another worker is searching the study (a rung's survivors are decided from all
                of its scores, which one process must hold).
        """
        ctx = self.ctx
        refuse_other_workers(ctx, "successive halving")
        super().start(stopping)
        if ctx.space.train is None:
            rows, n_classes = data_shape(ctx.dataset)
            self.plan = plan_for(ctx.space, ctx.settings, rows=rows, n_classes=n_classes)
        else:  # a training function: the resource is its epochs, known without data
            self.plan = plan_for(ctx.space, ctx.settings)
        self.current = first_candidates(ctx.space, ctx.settings, self.plan.rungs[0].candidates)
        self.found = histories(ctx.storage.list_trials(ctx.study.id), _rung_candidate)
        self._enter_rung()

    def _rung(self) -> Rung:
        assert self.plan is not None
        return self.plan.rungs[self.rung_index]

    def _enter_rung(self) -> None:
        """Gather the rung's stored results; its other fits are pending, cut-short ones first (resume
        retries them before new work), then scikit-learn's order."""
        assert self.plan is not None
        rung = self._rung()
        self.folds = rung_splits(self.splits, self.plan, rung, self.ctx.seed)
        self.results = {}
        pending: list[tuple[Candidate, CandidateHistory]] = []
        for candidate in self.current:
            history = self.found.get((rung.iteration, candidate.key), CandidateHistory())
            if history.finished is not None:
                self.results[candidate.key] = history.finished
            else:
                pending.append((candidate, history))
        pending.sort(key=lambda item: not item[1].interrupted)
        self.pending = [(candidate, history.retry_of) for candidate, history in pending]

    def retry(self, trials: list[TrialRecord]) -> None:
        """Fit the current rung's candidates of ``trials`` again first (those of ``resume`` already are)."""
        rung = self._rung()
        for trial in trials:
            if rung_of(trial) != rung.iteration:
                continue
            key = candidate_key(trial.params)
            if any(candidate.key == key for candidate, _ in self.pending):
                continue
            candidate = next((candidate for candidate in self.current if candidate.key == key), None)
            if candidate is not None and key not in self.results:
                self.pending.insert(0, (candidate, trial.number))

    def propose(self, room: int | None) -> list[Task] | None:
        """The rung's next fit (with ``--trainer population``, up to a population's worth of the rung's
        fits, which train together); once the rung is complete, the next rung's first (its candidates the
        best of this one); None after the last rung, or when another process holds a fit of the rung."""
        assert self.plan is not None
        while not self.pending:
            if self.blocked or self.rung_index == len(self.plan.rungs) - 1:
                return None
            scores = [_score(self.results[candidate.key]) for candidate in self.current]
            self.parents = {key: trial.number for key, trial in self.results.items()}
            self.current = top_k(self.current, scores, math.ceil(len(self.current) / self.plan.factor))
            self.rung_index += 1
            self._enter_rung()
        if self.blocked:
            return None
        limit = 1
        if isinstance(self.fitter, PopulationFitter):
            from ...training.fold_population import MAX_MEMBERS

            # A rung's candidates x folds, up to a population's worth: they share the rung's epochs.
            limit = max(1, MAX_MEMBERS // max(1, len(self.folds)))
            limit = limit if room is None else max(1, min(limit, room))
        tasks: list[Task] = []
        while self.pending and len(tasks) < limit:
            candidate, retry_of = self.pending.pop(0)
            tasks.append(self._task(candidate, retry_of))
            if retry_of is not None:
                break  # a retry trains alone (it keeps its finished folds)
        return tasks

    def _fitted(self, candidate: Candidate) -> Candidate:
        """``candidate`` with the current rung's epochs when epochs are the resource."""
        assert self.plan is not None
        if self.plan.resource != "epochs":
            return candidate
        return Candidate(candidate.index, {**candidate.sklearn_params, "epochs": self._rung().resources},
                         candidate.point)

    def _task(self, candidate: Candidate, retry_of: int | None) -> Task:
        """One (rung, candidate) trial; with ``--trainer population`` it may train with others of the rung."""
        assert self.plan is not None
        rung = self._rung()
        proposal = Proposal(
            candidate.point,
            engine_trial_id=f"{rung.iteration}:{candidate.index}",
            retry_of=retry_of,
            parent_number=self.parents.get(candidate.key),
            # The same parameters on another rung are other work, not a duplicate.
            identity={"params": candidate.point, "halving_iter": rung.iteration},
        )
        last = rung is self.plan.rungs[-1]
        if self.ctx.space.train is not None:  # the rung's epochs are the budget its ``report`` may reach
            train = _rung_fit(function_fit(self.ctx, candidate, rung.resources), rung, last)
            return Task(proposal, train, handle=candidate)
        assert self.fitter is not None and self.scoring is not None
        fitted = self._fitted(candidate)
        train = _rung_fit(cross_validation(fitted, self.fitter, self.folds, self.scoring), rung, last)
        if not isinstance(self.fitter, PopulationFitter):
            return Task(proposal, train, handle=candidate)
        from hpsearch.spaces import resolve_config

        from ...training.population_model import population_key

        key = population_key(resolve_config(self.ctx.space, candidate.point))
        # The rung is in the key: tasks of one propose are of one rung, and this keeps it so.
        return Task(proposal, train, handle=candidate,
                    pack_key=None if key is None else ("folds", rung.iteration, key),
                    train_together=self._train_together)

    def _train_together(self, tasks: list[Task], attempts: list[Attempt]) -> list[TrialOutcome | Exception]:
        """The claimed candidates of ``tasks`` (one rung's) as populations of their folds, each outcome
        recorded as ``_rung_fit`` records one trial's."""
        assert self.plan is not None and isinstance(self.fitter, PopulationFitter)
        assert self.scoring is not None
        rung = self._rung()
        last = rung is self.plan.rungs[-1]
        by_id = {task.proposal.engine_trial_id: self._fitted(task.handle) for task in tasks}
        for attempt in attempts:
            attempt.partial({"iter": rung.iteration, "n_resources": rung.resources})
        outcomes = candidates_together(by_id, self.fitter, self.folds, self.scoring)(attempts)
        return [_rung_outcome(outcome, last) for outcome in outcomes]

    def learn(self, task: Task, result: RunResult) -> None:
        """Keep a fit's result for its rung's ranking; a fit another process holds blocks the rung."""
        if result.status is RunStatus.FINISHED and result.trial is not None:
            self.results[task.handle.key] = result.trial
        elif result.status not in (RunStatus.INTERRUPTED, RunStatus.BUDGET_REACHED):
            self.blocked = True  # another process holds this fit: the next rung cannot be decided here


def _rung_fit(cross_validate: Fit, rung: Rung, last: bool) -> Fit:
    """``cross_validate`` as one rung's trial: tagged with its iteration and resource, PRUNED (with its
    value) when it completes on a rung before the last."""

    def fit(attempt: Attempt) -> TrialOutcome:
        # cv_results_' own columns, committed before the first fold so every trial shows its rung.
        attempt.partial({"iter": rung.iteration, "n_resources": rung.resources})
        return _rung_outcome(cross_validate(attempt), last)

    return fit


def _rung_outcome(outcome: Any, last: bool) -> Any:
    """A rung's trial outcome: PRUNED (with its value) when it completes on a rung before the last."""
    if isinstance(outcome, TrialOutcome) and outcome.state is TrialState.COMPLETE and not last:
        return TrialOutcome.pruned(outcome.value, outcome.metrics)
    return outcome
