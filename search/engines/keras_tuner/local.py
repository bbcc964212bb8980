"""The KerasTuner engine in this process: the oracle proposes, each trial trains here, one at a time.

Each KerasTuner trial (each Hyperband round included) is trained by the trial runner in this process with
the shared builder, continuing its parent round's best-epoch weights when it has one and keeping its own
when a later round may continue it.
"""

from __future__ import annotations

from typing import Any

from ...training.runner import Attempt, TrialOutcome
from ...training.weights_files import best_weights_keeper, load_weights
from ...training.work_files import matching_weights
from ..session import Fit
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
