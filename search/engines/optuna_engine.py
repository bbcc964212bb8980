"""The Optuna engine: TPE, random, grid and CMA-ES samplers with per-epoch pruning.

Optuna keeps its own RDB tables in the same database as ours, so ``optuna studies --storage URL`` and
optuna-dashboard open our file. Optuna decides what to try; our recorder writes what happened.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from search.engines.base import Engine, RunContext
from search.errors import UsageError
from search.training import EpochRecorderCallback, NonFiniteLossError, describe_error, fit_config
from spaces import SearchSpace, resolve_config
from storage import TrialRecord

PRUNERS = ("median", "hyperband", "none")
#: Optuna user attribute naming the hpsearch trial number whose config an enqueued trial retries.
RETRY_ATTR = "hp_retry_of"
#: Optuna user attribute linking an Optuna trial to our trial number.
NUMBER_ATTR = "hp_number"
#: Seconds between Optuna heartbeats; a trial silent for GRACE_S is failed by any live worker.
HEARTBEAT_S = 30
GRACE_S = 120


class TrialFailed(Exception):
    """Raised to Optuna after we recorded a trial's failure, so Optuna marks it FAIL and goes on."""


class OptunaEngine(Engine):
    name = "optuna"
    algorithms = ("tpe", "random", "grid", "cmaes")
    default_algorithm = "tpe"
    options = ("pruner",)
    # Optuna's RDB storage coordinates workers: each asks the shared study for its next trial.
    parallel_workers = True

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        pruner = settings.get("pruner", "median")
        if pruner not in PRUNERS:
            raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, but got '{pruner}'")
        if settings["algorithm"] == "grid":
            space.grid_size()  # raises SpaceError naming a parameter without finite values

    def describe(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[str]:
        lines = [
            f"engine optuna, sampler {settings['algorithm']}, pruner {settings.get('pruner', 'median')}",
            f"{len(space.params)} tuned parameters: {', '.join(space.params) or '(none)'}",
        ]
        if settings["algorithm"] == "grid":
            lines.append(f"grid: {space.grid_size()} candidates")
        return lines

    # -- Optuna objects ---------------------------------------------------------------------------
    def _sampler(self, ctx: RunContext) -> Any:
        import optuna

        from spaces.compile_optuna import to_grid_search_space

        # A resumed study must not replay the random start-up trials it already ran.
        seed = ctx.seed + sum(ctx.storage.count_trials(ctx.study.id).values())
        algorithm = ctx.settings["algorithm"]
        if algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if algorithm == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if algorithm == "grid":
            return optuna.samplers.GridSampler(to_grid_search_space(ctx.space), seed=seed)
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)

    def _pruner(self, ctx: RunContext) -> Any:
        import optuna

        pruner = ctx.settings.get("pruner", "median")
        if pruner == "none":
            return optuna.pruners.NopPruner()
        if pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=_epochs(ctx.space))
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)

    def _storage(self, ctx: RunContext) -> Any:
        import optuna

        def stale_trial_failed(study: Any, frozen: Any) -> None:
            # Another worker's trial went silent (its machine died): fail ours too and retry its config.
            from search.recovery import fail_trial_of_dead_worker

            number = frozen.user_attrs.get(NUMBER_ATTR)
            if number is not None:
                failed = fail_trial_of_dead_worker(ctx.storage, ctx.study, number)
                if failed is not None:
                    self._enqueue_retries(study, [failed])

        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna 5.0; we pin the version we tested them on.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                ctx.storage.url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=stale_trial_failed,
                engine_kwargs=(
                    {"connect_args": {"timeout": 30}} if ctx.storage.url.startswith("sqlite") else {}
                ),
            )

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
        self._study(ctx)

    # -- resume -----------------------------------------------------------------------------------
    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:
        """Fail Optuna's side of trials whose worker died, so Optuna does not wait on them forever."""
        from optuna.trial import TrialState as OptunaState

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

    def _enqueue_retries(self, study: Any, retries: list[TrialRecord]) -> None:
        from optuna.trial import TrialState as OptunaState

        already = {
            frozen.user_attrs.get(RETRY_ATTR)
            for frozen in study.get_trials(deepcopy=False, states=(OptunaState.WAITING,))
        }
        for trial in retries:
            if trial.number not in already:
                study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})

    # -- the search -------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        import optuna

        from spaces.compile_optuna import suggest_point

        study = self._study(ctx)
        self._enqueue_retries(study, ctx.retries)
        objective_name = ctx.study.objective
        direction = ctx.study.direction

        def objective(trial: optuna.Trial) -> float:
            point = suggest_point(ctx.space, trial)
            config = resolve_config(ctx.space, point)
            record = ctx.recorder.start(
                point, engine_trial_id=str(trial._trial_id), retry_of=trial.user_attrs.get(RETRY_ATTR)
            )
            trial.set_user_attr(NUMBER_ATTR, record.number)
            pruning = _PruningCallback(trial, objective_name)
            try:
                result = fit_config(
                    config,
                    ctx.dataset,
                    objective=objective_name,
                    direction=direction,
                    callbacks=[ctx.recorder.keras_callback(record), pruning.keras()],
                    seed=ctx.seed + record.number,
                )
            except NonFiniteLossError as error:
                ctx.recorder.fail(record, str(error))
                raise TrialFailed(str(error)) from error
            except KeyboardInterrupt:
                ctx.recorder.fail(record, "interrupted by the user (Ctrl-C)", interrupted=True)
                raise
            except Exception as error:  # one trial's error must not end the search
                ctx.recorder.fail(record, describe_error(error))
                raise TrialFailed(describe_error(error)) from error
            if pruning.pruned_at is not None:
                ctx.recorder.prune(record, result.value, result.final_metrics)
                raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at + 1}")
            if result.value is None:
                reason = f"objective '{objective_name}' was not reported by the model"
                ctx.recorder.fail(record, reason)
                raise TrialFailed(reason)
            ctx.recorder.complete(record, result.value, result.final_metrics)
            return result.value

        def stop_when_done(study: optuna.Study, _frozen: Any) -> None:
            if ctx.tracker.should_stop():
                study.stop()

        if ctx.tracker.should_stop():
            return
        remaining = ctx.tracker.remaining()
        study.optimize(
            objective,
            n_trials=None if remaining is None else remaining + len(ctx.retries),
            timeout=ctx.tracker.budget.time_left(),
            catch=(TrialFailed,),
            callbacks=[stop_when_done],
        )


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
    from spaces import DEFAULTS

    param = space.params.get("epochs")
    if param is not None:
        high = getattr(param, "high", None)
        return int(high if high is not None else max(param.grid_values()))
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))
