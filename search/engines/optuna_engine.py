"""The Optuna engine: TPE, random, grid and CMA-ES samplers with per-epoch pruning.

Optuna keeps its own RDB tables in the same database as ours, so ``optuna studies --storage URL`` and
optuna-dashboard open our file. Optuna decides what to try (``study.ask``); the trial runner trains and
records it; Optuna is told the outcome (``study.tell``).

Several workers share one Optuna study through its RDB storage. Each sampler's random state is reseeded
before every proposal from the study's seed and the proposal's index: the Optuna trial number, less the
trials before it that were not proposals (retries of interrupted trials, ``--warm-start`` copies, asks
whose worker died before claiming them). Optuna numbers trials uniquely across workers, so K workers
started together draw K different configurations (a seed per process would give them all the same
draws); and a proposal depends neither on when its process started nor on how often the study was
interrupted, so a resumed study proposes what the uninterrupted one would have. The grid sampler takes
grid points in that index order too.

With ``--pack K`` a worker asks up to K proposals at once and trains those that share batch size and
epochs together (:mod:`hpsearch.training.packing`, ``TrialRunner.run_pack``); each is still its own Optuna
trial,
reported to per epoch and told its own outcome. Asked proposals never claimed (Ctrl-C during an earlier
pack) are marked abandoned, so their proposal indices are asked again.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from hpsearch.spaces import SearchSpace, resolve_config
from hpsearch.storage import TrialRecord, TrialState

from ..errors import UsageError
from ..runtime.backends import check_backend, describe_backend, study_backend
from ..training.fit import EpochRecorderCallback, FitResult
from ..training.packing import fit_pack, pack_key
from ..training.runner import Attempt, Proposal, RunResult, RunStatus, TrialOutcome, TrialRunner
from .base import Engine, RunContext

PRUNERS = ("median", "hyperband", "none")
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
#: ``--pack`` by default: every trial trains alone.
DEFAULT_PACK = 1
#: Proposals in a row that repeat tried configurations before the space is taken as exhausted.
MAX_DUPLICATES_IN_A_ROW = 25


def trial_seed(seed: int, number: int) -> int:
    """A sampler seed for Optuna trial ``number`` of a study seeded ``seed``: distinct per trial."""
    import numpy as np

    return int(np.random.SeedSequence([seed % 2**32, number]).generate_state(1)[0])


def _reseed(sampler: Any, seed: int) -> None:
    """Reseed a sampler's random states (and those of the samplers it delegates to)."""
    from optuna.samplers._lazy_random_state import LazyRandomState

    for name in ("_rng", "_cma_rng"):
        state = getattr(sampler, name, None)
        if isinstance(state, LazyRandomState):
            state.rng.seed(seed)
    for name in ("_random_sampler", "_independent_sampler"):
        inner = getattr(sampler, name, None)
        if inner is not None:
            _reseed(inner, (seed + 1) % 2**32)


def _trial_seeded(base: type, seed: int) -> type:
    """``base`` sampler reseeded per trial number (see the module docstring)."""

    class TrialSeeded(base):  # type: ignore[misc, valid-type]
        def before_trial(self, study: Any, trial: Any) -> None:
            index = _proposal_index(study, trial)
            _reseed(self, trial_seed(seed, index))
            if "fixed_params" not in trial.system_attrs:
                study._storage.set_trial_user_attr(trial._trial_id, INDEX_ATTR, index)
            if (isinstance(self, _grid_sampler_class()) and "fixed_params" not in trial.system_attrs
                    and index < len(self._all_grids)):
                # GridSampler would take grid point ``trial.number``, which a retry ahead shifts. Its own
                # before_trial must not run after this: it reads the ``trial`` snapshot, which lacks the
                # grid_id just written, and would overwrite it with ``trial.number``.
                study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
                study._storage.set_trial_system_attr(trial._trial_id, "grid_id", index)
                return
            super().before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            if isinstance(self, _grid_sampler_class()):
                # GridSampler calls study.stop() here, which only works inside optimize(); the engine's
                # own loop stops when no grid point is left unvisited.
                return
            super().after_trial(study, trial, state, values)

    TrialSeeded.__name__ = TrialSeeded.__qualname__ = f"TrialSeeded{base.__name__}"
    return TrialSeeded


def _proposal_index(study: Any, trial: Any) -> int:
    """Trial ``trial``'s place among the study's proposals (see the module docstring)."""
    earlier = study._storage.get_all_trials(study._study_id, deepcopy=False)
    not_proposals = sum(
        1 for other in earlier
        if other.number < trial.number
        and any(name in other.user_attrs for name in (RETRY_ATTR, COPIED_ATTR, ABANDONED_ATTR))
    )
    return trial.number - not_proposals


def open_optuna_storage(open_storage: Callable[[], Any], attempts: int = 5) -> Any:
    """Optuna's RDB storage from ``open_storage``, retried when another process created Optuna's tables
    at the same moment.

    Optuna creates its tables by checking for each one and then creating it, so two studies started
    together on a fresh database (``hpsearch run ... &`` twice) can both see a table missing and the
    second ``CREATE TABLE`` fails ("table studies already exists" on SQLite, a duplicate key on
    PostgreSQL). The tables are then there: opening again finds them and creates nothing.
    """
    from sqlalchemy.exc import DatabaseError

    for attempt in range(attempts):
        try:
            return open_storage()
        except DatabaseError as e:
            text = str(e.orig if e.orig is not None else e).lower()
            if attempt == attempts - 1 or not ("already exists" in text or "duplicate key" in text):
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")  # the loop returns or raises


def _indexed_hyperband(**options: Any) -> Any:
    """Optuna's HyperbandPruner, assigning brackets by proposal index instead of trial number: a retry
    shares the bracket of the trial it retries, and a retry ahead shifts no other trial's bracket."""
    import optuna

    class IndexedHyperbandPruner(optuna.pruners.HyperbandPruner):
        def _get_bracket_id(self, study: Any, trial: Any) -> int:
            number = trial.user_attrs.get(INDEX_ATTR, trial.number)
            return super()._get_bracket_id(study, SimpleNamespace(number=number))

    return IndexedHyperbandPruner(**options)


def _grid_sampler_class() -> type:
    import optuna

    return optuna.samplers.GridSampler


class OptunaEngine(Engine):
    name = "optuna"
    algorithms = ("tpe", "random", "grid", "cmaes")
    default_algorithm = "tpe"
    options = ("pruner", "pack", "backend")
    # Optuna's RDB storage coordinates workers: each asks the shared study for its next trial.
    parallel_workers = True

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        pruner = settings.get("pruner", "median")
        if pruner not in PRUNERS:
            raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, but got '{pruner}'")
        check_backend(settings, pack=pack_size(settings))
        if settings["algorithm"] == "grid":
            space.grid_size()  # raises SpaceError naming a parameter without finite values

    def resolved_options(self, space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
        return {"pruner": settings.get("pruner") or "median", "pack": pack_size(settings),
                "backend": study_backend(settings)}

    def describe(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[str]:
        lines = [
            f"engine optuna, sampler {settings['algorithm']}, pruner {settings.get('pruner', 'median')}",
            f"{len(space.params)} tuned parameters: {', '.join(space.params) or '(none)'}",
            describe_backend(settings),
        ]
        if settings["algorithm"] == "grid":
            lines.append(f"grid: {space.grid_size()} candidates")
        size = pack_size(settings)
        if size > 1:
            lines.append(f"packs: {size} configurations asked at a time; those sharing batch size and epochs "
                         "train together in one process (a retry of an interrupted trial trains alone)")
        return lines

    # -- Optuna objects ---------------------------------------------------------------------------
    def _sampler(self, ctx: RunContext) -> Any:
        import optuna
        from hpsearch.spaces.compile_optuna import to_grid_search_space

        algorithm = ctx.settings["algorithm"]
        if algorithm == "tpe":
            return _trial_seeded(optuna.samplers.TPESampler, ctx.seed)(seed=ctx.seed)
        if algorithm == "random":
            return _trial_seeded(optuna.samplers.RandomSampler, ctx.seed)(seed=ctx.seed)
        if algorithm == "grid":
            # The grid's order comes from the study's seed alone: every worker shares one order.
            return _trial_seeded(optuna.samplers.GridSampler, ctx.seed)(
                to_grid_search_space(ctx.space), seed=ctx.seed
            )
        return _trial_seeded(optuna.samplers.CmaEsSampler, ctx.seed)(
            seed=ctx.seed, warn_independent_sampling=False
        )

    def _pruner(self, ctx: RunContext) -> Any:
        import optuna

        pruner = ctx.settings.get("pruner", "median")
        if pruner == "none":
            return optuna.pruners.NopPruner()
        if pruner == "hyperband":
            return _indexed_hyperband(min_resource=1, max_resource=_epochs(ctx.space))
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)

    def _storage(self, ctx: RunContext) -> Any:
        import optuna

        # No Optuna heartbeat: liveness is hpsearch's one rule for every engine (hpsearch.recovery), and
        # recovery fails Optuna's side of a stale trial through ``recover``.
        from hpsearch.storage.connection import sqlite_busy_timeout_s, sync_sqlite_at_checkpoints

        sqlite = ctx.storage.url.startswith("sqlite")
        storage = open_optuna_storage(
            lambda: optuna.storages.RDBStorage(
                ctx.storage.url,
                engine_kwargs={"connect_args": {"timeout": sqlite_busy_timeout_s()}} if sqlite else {},
            )
        )
        sync_sqlite_at_checkpoints(storage.engine)
        return storage

    def _study(self, ctx: RunContext) -> Any:
        import optuna

        # Our recorder reports every failure; Optuna's own warnings would repeat them with tracebacks.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        return optuna.create_study(
            study_name=ctx.study.name,
            storage=self._storage(ctx),
            sampler=self._sampler(ctx),
            pruner=self._pruner(ctx),
            direction=ctx.study.direction,
            load_if_exists=True,
        )

    def prepare(self, ctx: RunContext) -> None:
        # Optuna creates its tables and the study on first use; doing it here, in the supervisor,
        # keeps two workers starting together from both trying to create them.
        study = self._study(ctx)
        self._settle_abandoned_asks(ctx, study)
        if ctx.settings.get("warm_start"):
            self._add_copies(ctx, study)

    def _settle_abandoned_asks(self, ctx: RunContext, study: Any) -> None:
        """Fail the Optuna trials a dead worker asked for but never claimed (killed between ``ask`` and
        the claim), marked so that their proposal index is asked again and their grid point is not
        taken as visited. Only while no trial of the study runs: a live worker may be between the two.
        """
        from optuna.trial import TrialState as OptunaState

        if ctx.storage.running_trials(ctx.study.id):
            return
        claimed = {trial.engine_trial_id for trial in ctx.storage.list_trials(ctx.study.id)}
        for frozen in study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)):
            if str(frozen._trial_id) not in claimed:
                _abandon(study, frozen)

    def warm_start_note(self, settings: Mapping[str, Any], copied: int) -> str:
        return (f"warm start: Optuna's {settings['algorithm']} sampler (and the pruner, by their curves) "
                f"learns from the {copied} copied trial(s) as finished trials; a proposal of a copied "
                "configuration is refused as a duplicate, not trained")

    def _add_copies(self, ctx: RunContext, study: Any) -> None:
        """Give Optuna the study's ``--warm-start`` copies as COMPLETE trials, so the sampler learns from
        them. Idempotent (each carries our trial number), so a resume or a joining worker adds none twice.
        """
        import optuna
        from hpsearch.spaces.compile_optuna import to_distributions

        added = {frozen.user_attrs.get(NUMBER_ATTR) for frozen in study.get_trials(deepcopy=False)}
        copies = [trial for trial in ctx.storage.copied_trials(ctx.study.id, with_epochs=True)
                  if trial.number not in added]
        if not copies:
            return
        distributions = to_distributions(ctx.space)
        grid = study.sampler if ctx.settings["algorithm"] == "grid" else None
        for trial in copies:
            curve = trial.curves.get(ctx.study.objective, [])
            system_attrs: dict[str, Any] = {}
            if grid is not None:
                # GridSampler counts a grid point as visited by these two attributes: without them it would
                # propose the copied point again (refused as a duplicate, but an ask wasted).
                point = tuple(trial.params[name] for name in grid._param_names)
                if point in grid._all_grids:
                    system_attrs = {"search_space": grid._search_space,
                                    "grid_id": grid._all_grids.index(point)}
            study.add_trial(optuna.trial.create_trial(
                params=dict(trial.params),
                distributions=distributions,
                value=trial.value,
                intermediate_values={epoch: float(value) for epoch, value in enumerate(curve)
                                     if value is not None and math.isfinite(value)},
                user_attrs={NUMBER_ATTR: trial.number, COPIED_ATTR: trial.copied_from},
                system_attrs=system_attrs,
            ))

    # -- resume -----------------------------------------------------------------------------------
    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:
        """Fail Optuna's side of trials recovery failed, and queue their configurations' one retry, so a
        live worker of the study picks it up next."""
        import optuna
        from optuna.trial import TrialState as OptunaState

        from ..recovery import trials_to_retry

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        storage = self._storage(ctx)
        for trial in interrupted:
            if trial.engine_trial_id is None:
                continue
            try:
                frozen = storage.get_trial(int(trial.engine_trial_id))
            except KeyError:
                continue
            if frozen.state == OptunaState.RUNNING:
                storage.set_trial_state_values(int(trial.engine_trial_id), state=OptunaState.FAIL)
        numbers = {trial.number for trial in interrupted}
        retries = [trial for trial in trials_to_retry(ctx.storage, ctx.study) if trial.number in numbers]
        if retries:
            self._enqueue_retries(optuna.load_study(study_name=ctx.study.name, storage=storage), retries)

    def _enqueue_retries(self, study: Any, retries: list[TrialRecord]) -> None:
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

    # -- the search -------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        runner = TrialRunner(ctx)
        study = self._study(ctx)
        self._enqueue_retries(study, ctx.retries)
        size = pack_size(ctx.settings)
        duplicates_in_a_row = 0
        while not ctx.tracker.should_stop():
            if self._grid_exhausted(ctx, study):
                return
            asked = self._ask(ctx, study, size)
            for result in self._train(ctx, runner, study, asked):
                if result.status is RunStatus.BUDGET_REACHED:
                    ctx.tracker.budget_reached()
                    return
                duplicates_in_a_row = duplicates_in_a_row + 1 if result.status is RunStatus.DUPLICATE else 0
            if duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                print(f"note: sampler {ctx.settings['algorithm']} proposed {duplicates_in_a_row} "
                      "configurations in a row that were already tried; the space looks exhausted",
                      file=sys.stderr)
                return

    def _ask(self, ctx: RunContext, study: Any, size: int) -> list[_Asked]:
        """The next proposals: one, or with ``--pack K`` up to K (never more than the budget has room for).

        A queued retry of an interrupted trial is asked alone: it trains alone, to continue from its
        checkpoint."""
        from hpsearch.spaces.compile_optuna import suggest_point

        room = self._room(ctx, study) if size > 1 else ctx.tracker.remaining()
        wanted = size if room is None else max(1, min(size, room))
        asked: list[_Asked] = []
        while len(asked) < wanted:
            if asked and (self._grid_exhausted(ctx, study) or _retry_waiting(study)):
                break
            trial = study.ask()
            point = suggest_point(ctx.space, trial)
            proposal = Proposal(point, engine_trial_id=str(trial._trial_id),
                                retry_of=trial.user_attrs.get(RETRY_ATTR))
            asked.append(_Asked(trial, resolve_config(ctx.space, point), proposal,
                                _PruningCallback(trial, ctx.study.objective)))
            if proposal.retry_of is not None:
                break
        return asked

    def _room(self, ctx: RunContext, study: Any) -> int | None:
        """Trials the budget still has room for, less those other workers asked for and have not claimed
        yet (a worker asks its whole pack first): two workers asking packs near the end of the budget
        then ask fewer than they would, and the store refuses fewer of their proposals (still some: two
        workers asking at the same instant both see room)."""
        from optuna.trial import TrialState as OptunaState

        remaining = ctx.tracker.remaining()
        if remaining is None:
            return None
        asked = len(study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,)))
        claimed = ctx.storage.budget_usage(ctx.study.id)[1]
        return remaining - max(0, asked - claimed)

    def _train(
        self, ctx: RunContext, runner: TrialRunner, study: Any, asked: list[_Asked]
    ) -> list[RunResult]:
        """Train the asked proposals, those that share batch size and epochs together
        (hpsearch.training.packing),
        and tell Optuna how each ended."""
        groups: dict[Any, list[_Asked]] = {}
        for item in asked:
            key = ("alone", id(item)) if item.proposal.retry_of is not None else pack_key(item.config)
            groups.setdefault(key, []).append(item)
        results: list[RunResult] = []
        pending = list(asked)
        for group in groups.values():
            try:
                if len(group) == 1:
                    outcomes = [runner.run(group[0].proposal, group[0].train)]
                else:
                    outcomes = runner.run_pack(
                        [item.proposal for item in group],
                        lambda attempts, group=group: _train_pack(ctx, group, attempts),
                    )
            except BaseException:
                for item in group:
                    _tell_failed(study, item.trial)  # Ctrl-C or the database: our record says interrupted
                for item in pending:
                    if item not in group:
                        _abandon(study, item.trial)  # asked, never claimed: its proposal index is asked again
                raise
            for item, result in zip(group, outcomes, strict=True):
                _tell(study, item.trial, result)
                pending.remove(item)
            results.extend(outcomes)
        return results

    def _grid_exhausted(self, ctx: RunContext, study: Any) -> bool:
        """Every grid point is tried or being tried: nothing is left for this worker."""
        if ctx.settings["algorithm"] != "grid":
            return False
        from optuna.trial import TrialState as OptunaState

        if study.get_trials(deepcopy=False, states=(OptunaState.WAITING,)):
            return False  # a queued retry still has to run
        return not study.sampler._get_unvisited_grid_ids(study)


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


def _abandon(study: Any, trial: Any) -> None:
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


def _retry_waiting(study: Any) -> bool:
    """A retry of an interrupted trial is queued (it is asked next, and trains alone)."""
    from optuna.trial import TrialState as OptunaState

    return any(RETRY_ATTR in frozen.user_attrs
               for frozen in study.get_trials(deepcopy=False, states=(OptunaState.WAITING,)))


def pack_size(settings: Mapping[str, Any]) -> int:
    """``--pack K``: most proposals asked at once and trained together when they share batch size and
    epochs (hpsearch.training.packing); 1 trains every trial alone."""
    value = settings.get("pack")
    size = DEFAULT_PACK if value is None else value
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"--pack must be a whole number of at least 1, but got {value}")
    return size


@dataclass
class _Asked:
    """A proposal asked of Optuna, with what trains it."""

    trial: Any
    config: Mapping[str, Any]
    proposal: Proposal
    pruning: _PruningCallback

    def train(self, attempt: Attempt) -> TrialOutcome:
        """Train alone."""
        self.trial.set_user_attr(NUMBER_ATTR, attempt.record.number)
        result = attempt.fit(self.config, callbacks=[self.pruning.keras()])
        return self.outcome(attempt, result)

    def outcome(self, attempt: Attempt, result: FitResult) -> TrialOutcome:
        if self.pruning.pruned_at is not None:
            return TrialOutcome.pruned(result.value, result.final_metrics)
        return attempt.outcome(result)


def _train_pack(
    ctx: RunContext, group: list[_Asked], attempts: list[Attempt]
) -> list[TrialOutcome | Exception]:
    """Train the claimed members of ``group`` together; one outcome (or exception) per attempt."""
    by_number = {item.proposal.engine_trial_id: item for item in group}
    items = [by_number[attempt.record.engine_trial_id] for attempt in attempts]
    for item, attempt in zip(items, attempts, strict=True):
        item.trial.set_user_attr(NUMBER_ATTR, attempt.record.number)
    members = [attempt.pack_member(item.config, callbacks=[item.pruning.keras()])
               for item, attempt in zip(items, attempts, strict=True)]
    fits = fit_pack(members, ctx.dataset, objective=ctx.study.objective, direction=ctx.study.direction)
    return [fit if isinstance(fit, Exception) else item.outcome(attempt, fit)
            for item, attempt, fit in zip(items, attempts, fits, strict=True)]


def _tell_failed(study: Any, trial: Any) -> None:
    from optuna.trial import TrialState as OptunaState

    try:
        study.tell(trial, state=OptunaState.FAIL, skip_if_finished=True)
    except Exception:  # noqa: BLE001 - the database may be what failed; resume reconciles Optuna's side
        pass


class _PruningCallback:
    """Reports the objective to Optuna each epoch and stops training when Optuna says prune."""

    def __init__(self, trial: Any, objective: str) -> None:
        self.trial = trial
        self.objective = objective
        self.pruned_at: int | None = None

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


def _epochs(space: SearchSpace) -> int:
    """The most epochs any configuration of the space trains: Hyperband's max resource."""
    from hpsearch.spaces import DEFAULTS

    param = space.params.get("epochs")
    if param is not None:
        high = getattr(param, "high", None)
        return int(high if high is not None else max(param.grid_values()))
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))
