"""The Optuna engine's search session: Optuna asks (``study.ask``), the driver trains, Optuna is told.

Each proposal is an Optuna trial asked of the study shared through its RDB storage (see
:mod:`hpsearch.engines.optuna.engine` for the samplers and their seeding). With ``--pack K`` up to K are
asked at once; those sharing batch size and epochs train together (:mod:`hpsearch.training.packing`);
with ``--population K`` up to K, and those sharing depth and batch size train as one stacked model
(:mod:`hpsearch.training.population`; a configuration that cannot join one packs or trains alone). Each is
still its own Optuna trial, reported to per epoch and told its own outcome. A queued retry of an
interrupted trial (an Optuna WAITING trial carrying ``RETRY_ATTR``) is asked alone and trains alone, to
continue from its checkpoint. Asked proposals never claimed (the run stopped first) are marked abandoned,
so their proposal indices are asked again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from hpsearch.spaces import resolve_config
from hpsearch.storage import TrialRecord, TrialState

from ...training.fit import EpochRecorderCallback, FitResult
from ...training.packing import fit_pack, pack_key
from ...training.runner import Attempt, Proposal, RunResult, RunStatus, TrialOutcome
from ..session import SearchSession, Task

#: Optuna user attribute naming the hpsearch trial number whose config an enqueued trial retries.
RETRY_ATTR = "hp_retry_of"
#: Optuna user attribute linking an Optuna trial to our trial number.
NUMBER_ATTR = "hp_number"
#: Optuna user attribute saying why an Optuna trial was not trained (a duplicate, the budget).
NOT_TRAINED_ATTR = "hp_not_trained"
#: Optuna user attribute of a trial added from a ``--warm-start`` copy: the study and trial it came from.
COPIED_ATTR = "hp_copied_from"
#: Optuna user attribute: the proposal index a trial was sampled at (a retry: that of the trial it retries).
INDEX_ATTR = "hp_proposal"
#: Optuna user attribute of an asked trial whose worker died before claiming it: it was never trained, and
#: its proposal index is asked again.
ABANDONED_ATTR = "hp_abandoned"
#: Proposals in a row that repeat tried configurations before the space is taken as exhausted.
MAX_DUPLICATES_IN_A_ROW = 25


class OptunaSession(SearchSession):
    """One run's proposals from the shared Optuna study.

    Args:
        ctx: the run.
        open_study: opens (or creates) the run's Optuna study, its sampler and pruner set.
        size: ``--pack K``, the most proposals asked at once.
        population: ``--population K``: the most proposals asked at once and trained as populations
            (0: off).
    """

    def __init__(self, ctx: Any, open_study: Callable[[], Any], size: int, population: int = 0) -> None:
        self.ctx = ctx
        self.open_study = open_study
        self.size = max(size, population)
        self.population = population
        self.packs = size > 1
        self.study: Any = None
        self.duplicates_in_a_row = 0

    def start(self, stopping: Any) -> None:
        self.study = self.open_study()

    def retry(self, trials: list[TrialRecord]) -> None:
        enqueue_retries(self.study, trials)

    def propose(self, room: int | None) -> list[Task] | None:
        """The next proposals: one, or with ``--pack K`` up to K (never more than ``room``, less those
        other workers asked and have not claimed yet). A queued retry is asked alone."""
        from hpsearch.spaces.compile_optuna import suggest_point

        ctx, study = self.ctx, self.study
        if self.duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
            self.ended_by = (f"sampler {ctx.settings.algorithm} proposed {self.duplicates_in_a_row} "
                             "configurations in a row that were already tried; the space looks exhausted")
            return None
        if self._grid_exhausted():
            return None
        if self.size > 1:
            room = self._room(room)
        wanted = self.size if room is None else max(1, min(self.size, room))
        tasks: list[Task] = []
        while len(tasks) < wanted:
            if tasks and (self._grid_exhausted() or _retry_waiting(study)):
                break
            trial = study.ask()
            point = suggest_point(ctx.space, trial)
            proposal = Proposal(point, engine_trial_id=str(trial._trial_id),
                                retry_of=trial.user_attrs.get(RETRY_ATTR))
            pruning = _PruningCallback(trial, ctx.study.objective)
            asked = _Asked(trial, resolve_config(ctx.space, point), pruning)
            if ctx.space.train is not None:  # the user's training function: it trains alone
                tasks.append(Task(proposal, asked.train_function, handle=asked))
            else:
                tasks.append(Task(proposal, asked.train, handle=asked, pack_key=self._key(asked.config),
                                  train_together=self._train_together))
            if proposal.retry_of is not None:
                break
        return tasks

    def learn(self, task: Task, result: RunResult) -> None:
        _tell(self.study, task.handle.trial, result)
        self.duplicates_in_a_row = self.duplicates_in_a_row + 1 if result.status is RunStatus.DUPLICATE else 0

    def interrupt(self, task: Task) -> None:
        # Ctrl-C or the database: our record says interrupted; Optuna's trial is failed.
        _tell_failed(self.study, task.handle.trial)

    def abandon(self, task: Task) -> None:
        # Asked, never claimed: its proposal index is asked again.
        abandon_asked(self.study, task.handle.trial)

    def _room(self, remaining: int | None) -> int | None:
        """``remaining`` less the trials other workers asked for and have not claimed yet (a worker asks
        its whole pack first): two workers asking packs near the end of the budget then ask fewer than
        they would, and the store refuses fewer of their proposals (still some: two workers asking at the
        same instant both see room)."""
        from optuna.trial import TrialState as OptunaState

        if remaining is None:
            return None
        asked = len(self.study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)))
        claimed = self.ctx.storage.budget_usage(self.ctx.study.id)[1]
        return remaining - max(0, asked - claimed)

    def _grid_exhausted(self) -> bool:
        """Every grid point is tried or being tried: nothing is left for this worker."""
        if self.ctx.settings.algorithm != "grid":
            return False
        from optuna.trial import TrialState as OptunaState

        if self.study.get_trials(deepcopy=False, states=(OptunaState.WAITING,)):
            return False  # a queued retry still has to run
        return not self.study.sampler._get_unvisited_grid_ids(self.study)

    def _key(self, config: Mapping[str, Any]) -> Hashable | None:
        """What a proposal trains together by: its population key (``--population``), else its pack key
        (``--pack``), else None (alone)."""
        if self.population:
            from ...training.population_model import population_key

            key = population_key(config)
            if key is not None:
                return key
        return pack_key(config) if self.packs else None

    def _train_together(self, tasks: list[Task], attempts: list[Attempt]) -> list[TrialOutcome | Exception]:
        """Train the claimed members of ``tasks`` together (a population or a pack, as their key says); one
        outcome (or exception) per attempt."""
        by_id = {task.proposal.engine_trial_id: task.handle for task in tasks}
        items = [by_id[attempt.record.engine_trial_id] for attempt in attempts]
        for item, attempt in zip(items, attempts, strict=True):
            item.trial.set_user_attr(NUMBER_ATTR, attempt.record.number)
        ctx = self.ctx
        fits: list[FitResult | Exception]
        judged = {"objective": ctx.study.objective, "direction": ctx.study.direction}
        if self.population and _is_population(tasks[0].pack_key):
            from ...training.population import fit_population

            fits = fit_population([attempt.population_member(item.config, callbacks=[item.pruning.keras()])
                                   for item, attempt in zip(items, attempts, strict=True)],
                                  ctx.dataset, **judged)
        else:
            members = [attempt.pack_member(item.config, callbacks=[item.pruning.keras()])
                       for item, attempt in zip(items, attempts, strict=True)]
            fits = fit_pack(members, ctx.dataset, **judged)
        return [fit if isinstance(fit, Exception) else item.outcome(attempt, fit)
                for item, attempt, fit in zip(items, attempts, fits, strict=True)]


def _is_population(key: Hashable | None) -> bool:
    """Whether a task's key is a population's (``population_key``) rather than a pack's."""
    return isinstance(key, tuple) and bool(key) and key[0] == "population"


def enqueue_retries(study: Any, retries: list[TrialRecord]) -> None:
    """Queue the configuration of each of ``retries`` in the Optuna study, once (a WAITING trial carrying
    ``RETRY_ATTR`` and the proposal index of the trial it retries), so a live worker asks it next."""
    from optuna.trial import TrialState as OptunaState

    already = {
        frozen.user_attrs.get(RETRY_ATTR)
        for frozen in study.get_trials(deepcopy=False, states=(OptunaState.WAITING,))
    }
    for trial in retries:
        if trial.number in already:
            continue
        attrs: dict[str, Any] = {RETRY_ATTR: trial.number}
        if trial.engine_trial_id is not None:
            try:
                interrupted = study._storage.get_trial(int(trial.engine_trial_id))
            except KeyError:
                interrupted = None
            if interrupted is not None and INDEX_ATTR in interrupted.user_attrs:
                attrs[INDEX_ATTR] = interrupted.user_attrs[INDEX_ATTR]
        study.enqueue_trial(dict(trial.params), user_attrs=attrs)


def abandon_asked(study: Any, trial: Any) -> None:
    """Fail an asked Optuna trial that was never claimed, marked so that its proposal index is asked again
    and its grid point is not taken as visited."""
    from optuna.trial import TrialState as OptunaState

    try:
        study._storage.set_trial_user_attr(trial._trial_id, ABANDONED_ATTR, True)
        if "grid_id" in study._storage.get_trial(trial._trial_id).system_attrs:
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", -1)
        study._storage.set_trial_state_values(trial._trial_id, state=OptunaState.FAIL)
    except Exception:  # noqa: BLE001 - the database may be what failed; the next start settles it
        pass


def _tell(study: Any, trial: Any, result: RunResult) -> None:
    """Tell Optuna how the trial ended; a trial recovery already failed stays failed."""
    from optuna.trial import TrialState as OptunaState

    if result.status is RunStatus.FINISHED:
        assert result.trial is not None
        if result.trial.state is TrialState.COMPLETE:
            study.tell(trial, result.trial.value, skip_if_finished=True)
            return
        if result.trial.state is TrialState.PRUNED:
            study.tell(trial, state=OptunaState.PRUNED, skip_if_finished=True)
            return
    elif result.status is RunStatus.DUPLICATE:
        trial.set_user_attr(NOT_TRAINED_ATTR, f"the same configuration is trial #{result.duplicate_of}")
    elif result.status is RunStatus.BUDGET_REACHED:
        trial.set_user_attr(NOT_TRAINED_ATTR, "the trial budget was used up by other workers")
    study.tell(trial, state=OptunaState.FAIL, skip_if_finished=True)


def _tell_failed(study: Any, trial: Any) -> None:
    from optuna.trial import TrialState as OptunaState

    try:
        study.tell(trial, state=OptunaState.FAIL, skip_if_finished=True)
    except Exception:  # noqa: BLE001 - the database may be what failed; resume reconciles Optuna's side
        pass


def _retry_waiting(study: Any) -> bool:
    """A retry of an interrupted trial is queued (it is asked next, and trains alone)."""
    from optuna.trial import TrialState as OptunaState

    return any(RETRY_ATTR in frozen.user_attrs
               for frozen in study.get_trials(deepcopy=False, states=(OptunaState.WAITING,)))


@dataclass
class _Asked:
    """A proposal asked of Optuna, with what trains it."""

    trial: Any
    config: Mapping[str, Any]
    pruning: _PruningCallback

    def train(self, attempt: Attempt) -> TrialOutcome:
        """Train alone."""
        self.trial.set_user_attr(NUMBER_ATTR, attempt.record.number)
        result = attempt.fit(self.config, callbacks=[self.pruning.keras()])
        return self.outcome(attempt, result)

    def train_function(self, attempt: Attempt) -> TrialOutcome:
        """Train with the space's training function, its ``report`` feeding Optuna's pruner."""
        self.trial.set_user_attr(NUMBER_ATTR, attempt.record.number)
        return attempt.train_function(self.config, should_prune=self.pruning.should_prune)

    def outcome(self, attempt: Attempt, result: FitResult) -> TrialOutcome:
        if self.pruning.pruned_at is not None:
            return TrialOutcome.pruned(result.value, result.final_metrics)
        return attempt.outcome(result)


class _PruningCallback:
    """Reports the objective to Optuna each epoch and stops training when Optuna says prune."""

    def __init__(self, trial: Any, objective: str) -> None:
        self.trial = trial
        self.objective = objective
        self.pruned_at: int | None = None

    def should_prune(self, epoch: int, value: float) -> bool:
        """Report a training function's ``epoch`` (from 1) to Optuna; whether its pruner stops the trial.
        Steps are 0-based, as for Keras trials, so both kinds of trial compare at the same step."""
        self.trial.report(value, epoch - 1)
        if self.trial.should_prune():
            self.pruned_at = epoch - 1
            return True
        return False

    def keras(self) -> Any:
        def on_epoch(epoch: int, logs: Mapping[str, Any]) -> None:
            value = logs.get(self.objective)
            if value is None or not math.isfinite(float(value)):
                return
            self.trial.report(float(value), epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch
                callback.model.stop_training = True

        callback = EpochRecorderCallback(on_epoch)
        return callback
