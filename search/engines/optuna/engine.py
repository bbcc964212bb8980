"""The Optuna engine: TPE, random, grid, CMA-ES and BOHB-style samplers with per-epoch pruning (median,
Hyperband, ASHA, learning-curve extrapolation; hpsearch's own in ``asha``, ``bohb``, ``curve_stopping``).

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

The search session (:mod:`hpsearch.engines.optuna.session`) asks and tells; the driver runs the loop.
With ``--pack K`` a worker asks up to K proposals at once and trains those that share batch size and
epochs together; with ``--population K`` those that share depth and batch size train as one stacked
model (:mod:`hpsearch.training.population`); each is still its own Optuna trial. Asked proposals never
claimed (Ctrl-C during an earlier pack) are marked abandoned, so their proposal indices are asked again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace
from hpsearch.storage import TrialRecord

from ...errors import UsageError
from ...runtime.backends import check_backend, describe_backend, study_backend
from ...seeds import delegate_sampler_seed, sampler_seed
from ...settings import StudySettings
from ...training.population_option import population_size
from ..base import Engine
from .asha import DEFAULT_FACTOR, DEFAULT_MIN_RESOURCE, asha_pruner, rung_epochs
from .bohb import bohb_sampler_class
from .curve_stopping import curve_pruner
from .session import (
    ABANDONED_ATTR,
    COPIED_ATTR,
    INDEX_ATTR,
    NUMBER_ATTR,
    RETRY_ATTR,
    OptunaSession,
    abandon_asked,
    enqueue_retries,
)

if TYPE_CHECKING:
    from ...training.context import RunContext

PRUNERS = ("median", "hyperband", "asha", "curve", "none")
#: The pruner a new study records when ``--pruner`` is not given: the best mean rank at 25% of the budget
#: on LCBench's development tasks (docs/benchmarks/lcbench.md, ``scripts/bench_efficiency.py --benchmark
#: lcbench``).
DEFAULT_PRUNER = "hyperband"
#: What a study made before new studies recorded their pruner used (median): it keeps it on resume.
LEGACY_PRUNER = "median"
#: Pruners that read ``--min-resources`` and ``--factor`` (their rungs).
RUNG_PRUNERS = ("asha", "hyperband")
#: ``--pack`` by default: every trial trains alone.
DEFAULT_PACK = 1


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
            _reseed(inner, delegate_sampler_seed(seed))


def _trial_seeded(base: type, seed: int) -> type:
    """``base`` sampler reseeded per trial number (see the module docstring)."""

    class TrialSeeded(base):  # type: ignore[misc, valid-type]
        def before_trial(self, study: Any, trial: Any) -> None:
            index = _proposal_index(study, trial)
            _reseed(self, sampler_seed(seed, index))
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
    algorithms = ("tpe", "random", "grid", "cmaes", "bohb")
    default_algorithm = "tpe"
    options = ("pruner", "pack", "backend", "factor", "min_resources", "population")
    # Optuna's RDB storage coordinates workers: each asks the shared study for its next trial.
    parallel_workers = True

    def default_options(self, algorithm: str) -> dict[str, Any]:
        return {"pruner": default_pruner(algorithm)}

    def refuse_foreign_options(self, given: Mapping[str, Any]) -> None:
        super().refuse_foreign_options(given)
        if given.get("pruner") is not None:
            _refuse_unread_rungs(given, given["pruner"])

    def check(self, space: SearchSpace, settings: StudySettings) -> None:
        pruner = pruner_name(settings)
        if pruner not in PRUNERS:
            raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, but got '{pruner}'")
        rungs(settings)
        check_backend(settings, pack=pack_size(settings))
        populations = population_size(settings.population, settings.algorithm)
        if populations and study_backend(settings) != "tensorflow":
            raise UsageError(f"--population {settings.population} needs --backend tensorflow: a population "
                             "trains as one TensorFlow graph")
        if settings.algorithm == "grid":
            space.grid_size()  # raises SpaceError naming a parameter without finite values

    def resolved_options(self, space: SearchSpace, settings: StudySettings) -> dict[str, Any]:
        min_resource, factor = rungs(settings)
        return {"pruner": pruner_name(settings), "pack": pack_size(settings),
                "backend": study_backend(settings), "factor": factor, "min_resources": min_resource,
                "population": settings.population or "off"}

    def describe(self, space: SearchSpace, settings: StudySettings) -> list[str]:
        lines = [
            f"engine optuna, sampler {settings.algorithm}, pruner {pruner_name(settings)}",
            f"{len(space.params)} tuned parameters: {', '.join(space.params) or '(none)'}",
            describe_backend(settings),
        ]
        if settings.algorithm == "grid":
            lines.append(f"grid: {space.grid_size()} candidates")
        min_resource, factor = rungs(settings)
        if pruner_name(settings) == "asha":
            epochs = rung_epochs(min_resource, factor, _epochs(space))
            where = (f"past epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))}" if epochs
                     else "(no rung below the last epoch: nothing is stopped)")
            lines.append(f"asha: a trial goes on {where} only while among the best 1/{factor} of the "
                         "configurations that reached that epoch")
        members = population_size(settings.population, settings.algorithm)
        if members:
            lines.append(f"populations: {members} configurations asked at a time; those sharing depth and "
                         "batch size train as one stacked model (within floating-point rounding of training "
                         "alone without dropout; a retry of an interrupted trial trains alone)")
        size = pack_size(settings)
        if size > 1:
            lines.append(f"packs: {size} configurations asked at a time; those sharing batch size and epochs "
                         "train together in one process (a retry of an interrupted trial trains alone)")
        return lines

    # -- Optuna objects ---------------------------------------------------------------------------
    def _sampler(self, ctx: RunContext) -> Any:
        import optuna
        from hpsearch.spaces.compile_optuna import to_grid_search_space

        algorithm = ctx.settings.algorithm
        if algorithm == "tpe":
            return _trial_seeded(optuna.samplers.TPESampler, ctx.seed)(seed=ctx.seed)
        if algorithm == "random":
            return _trial_seeded(optuna.samplers.RandomSampler, ctx.seed)(seed=ctx.seed)
        if algorithm == "grid":
            # The grid's order comes from the study's seed alone: every worker shares one order.
            return _trial_seeded(optuna.samplers.GridSampler, ctx.seed)(
                to_grid_search_space(ctx.space), seed=ctx.seed
            )
        if algorithm == "bohb":
            return _trial_seeded(bohb_sampler_class(len(ctx.space.params)), ctx.seed)(seed=ctx.seed)
        return _trial_seeded(optuna.samplers.CmaEsSampler, ctx.seed)(
            seed=ctx.seed, warn_independent_sampling=False
        )

    def _pruner(self, ctx: RunContext) -> Any:
        import optuna

        pruner = pruner_name(ctx.settings)
        min_resource, factor = rungs(ctx.settings)
        if pruner == "none":
            return optuna.pruners.NopPruner()
        if pruner == "hyperband":
            return _indexed_hyperband(min_resource=min_resource, max_resource=_epochs(ctx.space),
                                      reduction_factor=factor)
        if pruner == "asha":
            return asha_pruner(min_resource, factor, _epochs(ctx.space))
        if pruner == "curve":
            return curve_pruner(_epochs(ctx.space))
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)

    def _storage(self, ctx: RunContext) -> Any:
        import optuna

        # No Optuna heartbeat: liveness is hpsearch's one rule for every engine (hpsearch.recovery), and
        # recovery fails Optuna's side of a stale trial through ``recover``.
        from hpsearch.storage.connection import sqlite_busy_timeout_s, sync_sqlite_at_checkpoints

        sqlite = ctx.storage.location.is_sqlite
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

        from .lean_reads import LeanReadStorage  # imports optuna: only when a study opens

        # Our recorder reports every failure; Optuna's own warnings would repeat them with tracebacks.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        return optuna.create_study(
            study_name=ctx.study.name,
            storage=LeanReadStorage(self._storage(ctx)),
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
        if ctx.settings.warm_start:
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
                abandon_asked(study, frozen)

    def warm_start_note(self, settings: StudySettings, copied: int) -> str:
        return (f"warm start: Optuna's {settings.algorithm} sampler (and the pruner, by their curves) "
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
        grid = study.sampler if ctx.settings.algorithm == "grid" else None
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
        """Fail Optuna's side of trials recovery failed, and queue their configurations' retries, so a
        live worker of the study picks them up next."""
        import optuna
        from optuna.trial import TrialState as OptunaState

        from ...retry_policy import trials_to_retry

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
            enqueue_retries(optuna.load_study(study_name=ctx.study.name, storage=storage), retries)

    # -- the search -------------------------------------------------------------------------------
    def session(self, ctx: RunContext) -> OptunaSession:
        """Proposals asked of the study's Optuna study, told each outcome (``optuna.session``)."""
        return OptunaSession(ctx, lambda: self._study(ctx), pack_size(ctx.settings),
                             population_size(ctx.settings.population, ctx.settings.algorithm))


def default_pruner(algorithm: str) -> str:
    """The pruner a new study of ``algorithm`` gets: asha for the bohb sampler (it learns from the rungs),
    ``DEFAULT_PRUNER`` for the others."""
    return "asha" if algorithm == "bohb" else DEFAULT_PRUNER


def pruner_name(settings: StudySettings) -> str:
    """The study's pruner: the one recorded with it (``--pruner``, or the default a new study records);
    a study recorded without one predates that and keeps its pruner of the time (median; asha for bohb)."""
    if settings.pruner:
        return settings.pruner
    return "asha" if settings.algorithm == "bohb" else LEGACY_PRUNER


def rungs(settings: StudySettings) -> tuple[int, int]:
    """``--min-resources`` and ``--factor`` of the asha and hyperband pruners, defaults filled in.

    Raises:
        UsageError: either is given with another pruner, or is not a whole number in range.
    """
    pruner = pruner_name(settings)
    if settings.pruner is None:
        # The default pruner: rung options typed with it would be ignored. (A pruner chosen on resume
        # may leave the study's recorded rungs unread: they stay recorded, for a later switch back.)
        _refuse_unread_rungs({"factor": settings.factor, "min_resources": settings.min_resources}, pruner)
    factor = DEFAULT_FACTOR if settings.factor is None else settings.factor
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise UsageError(f"--factor must be a whole number of at least 2 (1 in factor trials goes on at "
                         f"each rung), but got {settings.factor}")
    low = DEFAULT_MIN_RESOURCE if settings.min_resources is None else settings.min_resources
    if isinstance(low, bool) or not isinstance(low, int) or low < 1:
        raise UsageError(f"--min-resources must be a whole number of epochs of at least 1 for optuna's "
                         f"{pruner} pruner, but got {settings.min_resources}")
    return low, factor


def _refuse_unread_rungs(given: Mapping[str, Any], pruner: str) -> None:
    """Refuse ``--factor``/``--min-resources`` typed with a pruner that does not read them."""
    flags = [f"--{key.replace('_', '-')}" for key in ("factor", "min_resources")
             if given.get(key) is not None]
    if flags and pruner not in RUNG_PRUNERS:
        raise UsageError(f"{flags[0]} applies to optuna's asha and hyperband pruners only, not to pruner "
                         f"'{pruner}'")


def pack_size(settings: StudySettings) -> int:
    """``--pack K``: most proposals asked at once and trained together when they share batch size and
    epochs (hpsearch.training.packing); 1 trains every trial alone."""
    value = settings.pack
    size = DEFAULT_PACK if value is None else value
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UsageError(f"--pack must be a whole number of at least 1, but got {value}")
    return size


def _epochs(space: SearchSpace) -> int:
    """The most epochs any configuration of the space trains: Hyperband's max resource."""
    from hpsearch.spaces import DEFAULTS

    param = space.params.get("epochs")
    if param is not None:
        high = getattr(param, "high", None)
        return int(high if high is not None else max(param.grid_values()))
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))
