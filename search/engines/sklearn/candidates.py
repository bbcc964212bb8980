"""The candidates of a scikit-learn search: the parameter settings its search class would fit, in its order.

``ParameterGrid(to_param_grid(space))`` for the grid algorithms and ``ParameterSampler(
to_param_distributions(space), n_iter, random_state=--seed)`` for the random ones are the very iterators
``GridSearchCV``, ``RandomizedSearchCV`` and the halving searches use, so the candidates and their order are
scikit-learn's. A candidate is identified across runs by its parameters as stored (``candidate_key``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hpsearch.spaces import SearchSpace
from hpsearch.storage import TrialRecord

from ...settings import StudySettings

#: The algorithms whose candidates are the whole grid, not samples of the space's distributions.
GRID_ALGORITHMS = ("grid", "halving-grid")
#: ``n_iter`` of a random search bounded by time only: the sampler is read lazily, one candidate at a time.
UNBOUNDED = 2**31 - 1


@dataclass(frozen=True)
class Candidate:
    """One parameter setting: as scikit-learn sets it on the estimator, and as the trial records it."""

    index: int
    sklearn_params: dict[str, Any]
    point: dict[str, Any]

    @property
    def key(self) -> str:
        """The candidate's identity across runs (``candidate_key`` of its point)."""
        return candidate_key(self.point)


def candidate_key(point: Mapping[str, Any]) -> str:
    """Identity of a candidate across runs: its parameters, as stored (JSON round-trips them exactly)."""
    return json.dumps(dict(point), sort_keys=True)


def candidate_from_params(space: SearchSpace, index: int, sklearn_params: Mapping[str, Any]) -> Candidate:
    """The candidate number ``index`` of a parameter setting as scikit-learn's iterators give it
    (``model__``-routed names, as ``to_param_grid`` compiles them)."""
    from hpsearch.spaces.compile_sklearn import config_from_sklearn_params

    tuned = config_from_sklearn_params(sklearn_params)
    point = {name: tuned[name] for name in space.params}
    return Candidate(index, {key: tuned[key.removeprefix("model__")] for key in sklearn_params}, point)


def candidate_of_trial(space: SearchSpace, trial: TrialRecord) -> Candidate:
    """The candidate a stored trial fitted (index -1 when its engine trial id is not a candidate index)."""
    from hpsearch.spaces.compile_sklearn import MODEL_PREFIX, WRAPPER_PARAMS

    index = int(trial.engine_trial_id) if (trial.engine_trial_id or "").isdigit() else -1
    routed = {(name if name in WRAPPER_PARAMS else MODEL_PREFIX + name): value
              for name, value in trial.params.items()}
    return candidate_from_params(space, index, routed)


def compiled_space(space: SearchSpace, algorithm: str) -> dict[str, Any]:
    """The space as ``algorithm``'s search class takes it: ``param_grid`` or ``param_distributions``."""
    from hpsearch.spaces.compile_sklearn import to_param_distributions, to_param_grid

    return to_param_grid(space) if algorithm in GRID_ALGORITHMS else to_param_distributions(space)


def parameter_sampler(space: SearchSpace, n_iter: int, seed: int) -> Any:
    """``ParameterSampler`` over the space's distributions, as the random searches draw their candidates."""
    from hpsearch.spaces.compile_sklearn import to_param_distributions
    from sklearn.model_selection import ParameterSampler

    return ParameterSampler(to_param_distributions(space), n_iter=n_iter, random_state=seed)


def candidate_count(space: SearchSpace, settings: StudySettings) -> int | None:
    """How many candidates ``--algorithm grid`` or ``random`` would fit (None: a random search bounded by
    time only)."""
    if settings.algorithm == "grid":
        return space.grid_size()
    trials = settings.trials
    if trials is None:
        return None
    from hpsearch.spaces import SpaceError

    try:
        return min(int(trials), space.grid_size())  # all finite: sampled without replacement
    except SpaceError:
        return int(trials)


def candidates(space: SearchSpace, algorithm: str, n_iter: int, seed: int) -> Iterator[Candidate]:
    """The candidates ``algorithm``'s search class fits, in its order, read lazily: the whole grid, or
    ``n_iter`` samples drawn with ``random_state=seed`` (fewer when the space has fewer settings)."""
    from sklearn.model_selection import ParameterGrid

    if algorithm in GRID_ALGORITHMS:
        parameters: Any = ParameterGrid(compiled_space(space, algorithm))
    else:
        parameters = parameter_sampler(space, n_iter, seed)
    with warnings.catch_warnings():
        # "The total space of parameters is smaller than n_iter": expected with a time-only budget.
        warnings.simplefilter("ignore", UserWarning)
        for index, params in enumerate(parameters):
            yield candidate_from_params(space, index, params)
