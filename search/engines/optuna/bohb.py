"""``--algorithm bohb``: TPE that learns from the trials a pruner stopped, at the epoch they reached.

Optuna's TPE ranks every completed trial above every pruned one (``_split_trials``: the "good" group is
filled with completed trials first, pruned trials only when too few completed, ordered by how far they got).
With ASHA or Hyperband most trials are pruned, so TPE learns little more than "stopped early is bad" and
never compares two stopped configurations at an epoch both reached.

BOHB (Falkner, Klein and Hutter, "BOHB: Robust and Efficient Hyperparameter Optimization at Scale",
ICML 2018) fits its TPE-style model on the observations of the highest budget that has enough of them:
here the highest epoch that at least ``d + 2`` configurations' stored curves reach (``d`` the number of
tuned parameters; BOHB's ``N_min = d + 1`` plus one, so both the good and the bad group hold a point).
Every configuration that reached that epoch (completed, pruned, still running, or a ``--warm-start``
copy) counts with its curve's value there; the others are left out. Until some epoch has enough, the
proposals are TPE's random start-up ones. Optuna's TPE (its kernel estimator and candidate sampling)
does the rest, so it is the pruner that sets the budgets: ``asha`` by default with this sampler.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .asha import configuration_key


def fidelity_trials(trials: list[Any], n_params: int) -> list[Any]:
    """The trials TPE should learn from: copies valued at the highest epoch at least ``n_params + 2``
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
    needed = n_params + 2
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

    class BohbSampler(optuna.samplers.TPESampler):
        def _view(self, study: Any) -> _FidelityStudy:
            return _FidelityStudy(study, fidelity_trials(study.get_trials(deepcopy=False), n_params))

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return super().sample_relative(self._view(study), trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return super().sample_independent(self._view(study), trial, param_name, param_distribution)

    return BohbSampler
