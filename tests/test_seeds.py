"""hpsearch.seeds: every seed derivation gives the values the code before it gave (pinned here, computed
with ``training.runner.training_seed`` and the Optuna engine's ``trial_seed`` before they moved)."""

from __future__ import annotations

import pytest
from hpsearch import seeds
from hpsearch.training.runner import training_seed as runner_training_seed


@pytest.mark.parametrize(("seed", "params", "expected"), [
    (0, {}, 1143664037),
    (0, {"units": 32, "lr": 0.01}, 906838985),
    (7, {"units": 32, "lr": 0.01}, 1381009518),
    (2**32 - 1, {"a": "relu", "b": [1, 2]}, 1262829186),
    (123, {"x": 1.5}, 293182749),
])
def test_training_seed_is_unchanged(seed: int, params: dict, expected: int) -> None:
    assert seeds.training_seed(seed, params) == expected
    # The parameters' order does not matter: the configuration's key is canonical.
    assert seeds.training_seed(seed, dict(reversed(list(params.items())))) == expected
    assert runner_training_seed is seeds.training_seed  # the runner reads the one derivation


@pytest.mark.parametrize(("seed", "number", "expected"), [
    (0, 0, 2968811710),
    (0, 1, 3964924996),
    (7, 5, 1002604896),
    (2**32 - 1, 3, 817018528),
    (2**32 + 5, 2, 3226123765),
])
def test_sampler_seed_is_unchanged(seed: int, number: int, expected: int) -> None:
    assert seeds.sampler_seed(seed, number) == expected


def test_the_simple_derivations() -> None:
    assert seeds.study_seed(None) == 0 and seeds.study_seed(5) == 5
    assert seeds.data_split_seed(9) == 9 and seeds.candidate_seed(9) == 9
    assert seeds.delegate_sampler_seed(2**32 - 1) == 0 and seeds.delegate_sampler_seed(4) == 5
    assert seeds.keras_tuner_seed(0) == 1
    assert seeds.epoch_order_seed(2**31 + 3) == 3 and seeds.epoch_order_seed(17) == 17
    assert seeds.retrain_seeds(3, 3) == [3, 4, 5] and seeds.retrain_seeds(0, 1) == [0]
