"""``--algorithm bohb``: TPE fitted at the highest epoch enough configurations reached (BOHB-style).

What Optuna's TPE already does with pruned trials (``optuna.samplers._tpe.sampler._split_trials``): it
ranks every completed trial above every pruned one, and pruned ones by how far they got, then by their
last value; its good group (the best 10%) is filled with completed trials first, and pruned trials enter
it only while fewer than that have completed. So TPE does learn from a pruner's decisions ("stopped
early" counts as bad), but with ASHA or Hyperband, where few trials complete, its good group is one or
two completed trials and the many observations of the lower rungs only ever land in the bad group.

BOHB (Falkner, Klein and Hutter, "BOHB: Robust and Efficient Hyperparameter Optimization at Scale",
ICML 2018) fits its model on the observations of the highest budget that has enough of them, with a good
group of at least ``d + 1`` points (``d`` the number of tuned parameters). Here:

- the budget is the highest epoch that at least ``2 (d + 1)`` configurations' stored curves reach, so
  that the good and the bad group can each hold ``d + 1``; every configuration that reached it
  (completed, pruned, still running, or a ``--warm-start`` copy) counts with its curve's value at that
  epoch, the others are left out;
- the good group is the best 15% of those (BOHB's default), at least ``d + 1`` and never all of them;
- the first 10 proposals (TPE's start-up count, over the whole study), and any made while no epoch has
  enough observations, are random (BOHB's random fraction is otherwise left out: Optuna's TPE samples
  its candidates from a prior-smoothed estimator).

Optuna's TPE does the rest (its Parzen estimators and candidate sampling); the pruner sets the budgets:
``asha`` by default with this sampler.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .asha import configuration_key

#: Random proposals before the model, as TPE's default ``n_startup_trials``.
STARTUP_TRIALS = 10


def good_count(n_params: int) -> Any:
    """TPE's ``gamma`` as BOHB sets it: the best 15% of the observations form the good group, but never
    fewer than ``n_params + 1`` (TPE's own 10% would leave a single point with the few observations a
    high budget holds), and never all of them."""

    def gamma(n: int) -> int:
        return max(1, min(n - 1, max(n_params + 1, math.ceil(0.15 * n))))

    return gamma


def fidelity_trials(trials: list[Any], n_params: int) -> list[Any]:
    """The trials TPE should learn from: copies valued at the highest epoch at least ``2 * (n_params + 1)``
    configurations reached, marked COMPLETE; [] when no epoch has enough.

    Args:
        trials: the study's Optuna trials (any state).
        n_params: the number of tuned parameters.

    Returns:
        Copies of the trials (the stored ones are not changed), one per configuration.
    """
    from optuna.trial import TrialState

    reached: dict[int, dict[Any, Any]] = {}
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL):
            continue
        key = configuration_key(trial)
        for step, value in trial.intermediate_values.items():
            if value is not None and math.isfinite(value):
                reached.setdefault(step, {}).setdefault(key, (trial, float(value)))
    needed = 2 * (n_params + 1)
    steps = [step for step, seen in reached.items() if len(seen) >= needed]
    if not steps:
        return []
    chosen = []
    for trial, value in reached[max(steps)].values():
        if not trial.params:
            continue
        copied = copy.copy(trial)
        copied._state = TrialState.COMPLETE
        copied._values = [value]
        chosen.append(copied)
    return chosen


class _FidelityStudy:
    """A view of the study whose trials are those of :func:`fidelity_trials` (all else delegated)."""

    def __init__(self, study: Any, trials: list[Any]) -> None:
        self._study = study
        self._fidelity = trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = False, states: Any = None, use_cache: bool = False) -> list[Any]:
        return [t for t in self._fidelity if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return self._get_trials(deepcopy, states)


def bohb_sampler_class(n_params: int) -> type:
    """The TPE sampler class that samples from the view of :func:`fidelity_trials` (module docstring).

    Args:
        n_params: the number of tuned parameters of the space.

    Returns:
        A subclass of ``optuna.samplers.TPESampler``.
    """
    import optuna
    from optuna.trial import TrialState

    class BohbSampler(optuna.samplers.TPESampler):
        def __init__(self, **options: Any) -> None:
            # The start-up phase is counted on the whole study here: TPE's own count would run on the
            # view, which holds fewer trials than the study for as long as the model would learn.
            super().__init__(n_startup_trials=0, **options)
            # Set after construction: Optuna 4.9 deprecates the ``gamma`` argument (a FutureWarning for
            # every user), not the split it sets.
            self._gamma = good_count(n_params)

        def _view(self, study: Any, trial: Any) -> _FidelityStudy | None:
            # One view per proposal: TPE samples each parameter separately, and each would read the study.
            cached = getattr(self, "_cached_view", None)
            if cached is not None and cached[0] == trial._trial_id:
                return cached[1]
            view = self._fresh_view(study)
            self._cached_view = (trial._trial_id, view)
            return view

        def _fresh_view(self, study: Any) -> _FidelityStudy | None:
            trials = study.get_trials(deepcopy=False)
            finished = sum(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials)
            if finished < STARTUP_TRIALS:
                return None
            fidelity = fidelity_trials(trials, n_params)
            return _FidelityStudy(study, fidelity) if fidelity else None

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            view = self._view(study, trial) if search_space else None
            return {} if view is None else super().sample_relative(view, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            view = self._view(study, trial)
            if view is None:
                return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
            return super().sample_independent(view, trial, param_name, param_distribution)

    return BohbSampler
