"""The KerasTuner engine in this process: ``Tuner.search`` drives the oracle, the trial runner trains.

A small ``keras_tuner.Tuner`` subclass lets ``Tuner.search`` drive the oracle as usual, but its
``run_trial`` hands each trial (each Hyperband round included) to the one trial runner, which trains it
here with the shared builder and records it.
"""

from __future__ import annotations

from typing import Any

from ...training.fit import describe_error
from ...training.runner import Attempt, TrialOutcome
from ...training.weights_files import best_weights_keeper, load_weights
from ...training.work_files import matching_weights
from .search import KerasTunerSearch, StopSearch, TrialPlan


class LocalSearch(KerasTunerSearch):
    """One run of the search with every trial trained in this process."""

    def run(self) -> None:
        """Run ``Tuner.search`` until the oracle or the budget stops; then snapshot and collect weights.

        Raises:
            Whatever our own bookkeeping raised (the database, most likely), as itself.
        """
        import keras_tuner

        self.prepare()
        tuner_class = _tuner_class()
        with self.work_directory() as directory:
            project_name = self.weights.folder.name if self.weights is not None else "search"
            tuner = tuner_class(self, self.oracle, directory=str(directory), project_name=project_name)
            try:
                tuner.search(verbose=0)
            except StopSearch:
                pass
            except keras_tuner.errors.FatalError as error:
                # Our own bookkeeping failed (the database, most likely): that one error, not KerasTuner's.
                # A budget stop raised while a trial was claimed arrives the same way.
                if not isinstance(error.__cause__, StopSearch):
                    if error.__cause__ is not None:
                        raise error.__cause__ from None
                    raise
            self.save()
            self.collect_weights()

    def before_trial(self) -> None:
        """Called before the tuner asks the oracle for a trial.

        Raises:
            StopSearch: the shared budget says stop.
            SearchFailedError: the oracle kept answering without a trial (see ``count_idle``).
        """
        if self.ctx.tracker.should_stop():
            raise StopSearch
        self.count_idle()

    def fit_function(self, plan: TrialPlan) -> Any:
        """Training as the trial runner calls it: here, in this process."""
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


def _tuner_class() -> type:
    """A ``keras_tuner.Tuner`` training through a ``LocalSearch``; built lazily so importing this module
    does not import KerasTuner (nor TensorFlow)."""
    import keras_tuner
    from keras_tuner.src import config as keras_tuner_config

    # KerasTuner prints the traceback of every failed trial to stderr (its DEBUG flag is on by default).
    # The trial runner has already recorded and reported the reason ("loss became nan at epoch 2"); the
    # traceback would only show where run_trial raised it again.
    keras_tuner_config.DEBUG = False

    class Abort(keras_tuner.errors.FatalError):
        """Our own bookkeeping failed: KerasTuner must not take it for one failed trial."""

    class SearchTuner(keras_tuner.Tuner):
        def __init__(self, search: LocalSearch, oracle: Any, **kwargs: Any) -> None:
            self._search = search
            super().__init__(oracle=oracle, overwrite=False, **kwargs)

        def pre_create_trial(self) -> None:
            self._search.before_trial()

        def on_trial_begin(self, trial: Any) -> None:
            self._search.trial_began(trial)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
            try:
                return self._search.train(trial)
            except keras_tuner.errors.FailedTrialError:
                raise
            except Exception as error:
                raise Abort(describe_error(error)) from error

        def on_trial_end(self, trial: Any) -> None:
            self.oracle.end_trial(trial)
            self._search.trial_ended(trial)

        def save(self) -> None:
            """State lives in the database (``KerasTunerSearch.save``); no ``tuner0.json``."""

        def reload(self) -> None:
            """Never reloaded from files."""

    return SearchTuner
