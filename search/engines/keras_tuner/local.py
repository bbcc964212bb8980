"""The KerasTuner engine in this process: the oracle proposes, each trial trains here, one at a time.

Each KerasTuner trial (each Hyperband round included) is trained by the trial runner in this process with
the shared builder, continuing its parent round's best-epoch weights when it has one and keeping its own
when a later round may continue it. With ``--population K`` (random search) the trials of one proposal
that share depth and batch size train as one stacked model (:mod:`hpsearch.training.population`), each
still its own KerasTuner trial and its own record; a retry of an interrupted trial trains alone.
"""

from __future__ import annotations

from typing import Any

from hpsearch.spaces import resolve_config

from ...training.fit import FitResult
from ...training.runner import Attempt, TrialOutcome
from ...training.weights_files import best_weights_keeper, load_weights
from ...training.work_files import matching_weights
from ..session import Fit, Task
from .search import KerasTunerSearch, TrialPlan


class LocalSearch(KerasTunerSearch):
    """One run of the search with every trial trained in this process."""

    def fit_function(self, plan: TrialPlan) -> Fit:
        """Training as the trial runner calls it: here, in this process."""
        if self.ctx.space.train is not None:
            # The user's training function: a Hyperband round runs it again from its first epoch with the
            # round's epochs as its budget (no weights of ours to continue), as successive halving does.
            def fit_function(attempt: Attempt) -> TrialOutcome:
                return attempt.train_function(plan.config, epochs=plan.epochs)

            return fit_function
        callbacks = []
        if plan.keep_weights is not None:
            callbacks.append(best_weights_keeper(self.objective, self.direction, plan.keep_weights))

        def load_parent(model: Any) -> None:
            if plan.parent_weights is not None:
                weights = load_weights(plan.parent_weights)
                model.set_weights(matching_weights(weights, model, plan.parent_weights))

        def fit(attempt: Attempt) -> TrialOutcome:
            # Epochs are counted within this round, so epochs_run is what this round cost.
            result = attempt.fit(
                plan.config, callbacks=callbacks, epochs=plan.epochs, initial_epoch=plan.initial_epoch,
                epoch_offset=plan.initial_epoch, prepare_model=load_parent,
            )
            return attempt.outcome(result)

        return fit

    def fit_together(self) -> Any:
        """Populations train here, in this process (a training function's trials train alone)."""
        return None if self.ctx.space.train is not None else self._train_population

    def _train_population(self, tasks: list[Task], attempts: list[Attempt]) -> list[TrialOutcome | Exception]:
        """Train the claimed members of ``tasks`` as one population; one outcome (or the exception that
        ended that member) per attempt, in the order of ``attempts``."""
        from ...training.population import fit_population

        ctx = self.ctx
        points = {task.proposal.engine_trial_id: task.proposal.params for task in tasks}
        configs = [resolve_config(ctx.space, points[attempt.record.engine_trial_id]) for attempt in attempts]
        fits: list[FitResult | Exception] = fit_population(
            [attempt.population_member(config) for attempt, config in zip(attempts, configs, strict=True)],
            ctx.dataset, objective=self.objective, direction=self.direction)
        return [fit if isinstance(fit, Exception) else attempt.outcome(fit)
                for attempt, fit in zip(attempts, fits, strict=True)]
