"""The three compilers: one point gives one resolved config, whichever engine proposed it."""

from __future__ import annotations

from typing import Any

import pytest
from hpsearch.spaces import SearchSpace, SpaceError, load_space, resolve_config, space_from_dict
from hpsearch.spaces.compile_keras_tuner import declare_hyperparameters, point_from_hyperparameters
from hpsearch.spaces.compile_optuna import suggest_point, to_distributions, to_grid_search_space
from hpsearch.spaces.compile_sklearn import config_from_sklearn_params, to_param_distributions, to_param_grid

SPACE = {
    "task": "multiclass",
    "objective": "val_accuracy",
    "params": {
        "n_hidden": {"type": "int", "low": 1, "high": 3},
        "n_neurons": {"type": "int", "low": 8, "high": 32, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        "learning_rate": {
            "type": "float", "low": 0.001, "high": 0.1, "log": True, "grid": [0.001, 0.01, 0.1]
        },
        "momentum": {"type": "float", "grid": [0.0, 0.9]},
        "batch_size": {"type": "categorical", "choices": [16, 32]},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd(momentum=0.9)"]},
        "batch_norm": {"type": "categorical", "choices": [True, False]},
    },
    "fixed": {"epochs": 2},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return space_from_dict(SPACE, "compilers.yaml")


def via_optuna(space: SearchSpace, point: dict[str, Any]) -> dict[str, Any]:
    import optuna

    return suggest_point(space, optuna.trial.FixedTrial(point))


def via_keras_tuner(space: SearchSpace, point: dict[str, Any]) -> dict[str, Any]:
    hp = declare_hyperparameters(space)
    for name, value in point.items():
        hp.values[name] = value
    return point_from_hyperparameters(space, hp)


def via_sklearn(point: dict[str, Any]) -> dict[str, Any]:
    routed = {name if name in ("batch_size", "epochs") else f"model__{name}": value
              for name, value in point.items()}
    return config_from_sklearn_params(routed)


def assert_same_config(space: SearchSpace, point: dict[str, Any]) -> None:
    expected = resolve_config(space, point)
    for other in (via_optuna(space, point), via_keras_tuner(space, point), via_sklearn(point)):
        assert resolve_config(space, other) == expected


def test_sklearn_grid_points_resolve_alike(space: SearchSpace) -> None:
    from sklearn.model_selection import ParameterGrid

    grid = ParameterGrid(to_param_grid(space))
    assert len(grid) == space.grid_size() == 3 * 25 * 4 * 3 * 2 * 2 * 2 * 2
    for index in range(0, len(grid), 97):
        entry = grid[index]
        assert "batch_size" in entry and "model__n_neurons" in entry and "model__batch_size" not in entry
        point = config_from_sklearn_params(entry)
        assert set(point) == set(space.params)
        assert_same_config(space, point)


def test_optuna_samples_resolve_alike(space: SearchSpace) -> None:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        point = suggest_point(space, trial)
        assert trial.distributions == to_distributions(space)
        assert all(type(value) in (int, float, str, bool) for value in point.values())
        assert_same_config(space, point)
        study.tell(trial, 0.0)


def test_keras_tuner_samples_resolve_alike(space: SearchSpace) -> None:
    hp = declare_hyperparameters(space)
    assert [entry.name for entry in hp.space] == space.tuned_names
    distributions = to_distributions(space)
    for seed in range(20):
        for entry in hp.space:
            hp.values[entry.name] = entry.random_sample(seed)
        point = point_from_hyperparameters(space, hp)
        for name, value in point.items():
            distribution = distributions[name]
            assert distribution._contains(distribution.to_internal_repr(value)), (name, value)
        assert_same_config(space, point)


@pytest.mark.filterwarnings("ignore:The value .* is out of the range")
def test_float_step_noise_is_snapped(space: SearchSpace) -> None:
    point = {name: param.grid_values()[0] for name, param in space.params.items()}
    point["dropout"] = 0.1 + 0.2  # 0.30000000000000004, as engines compute low + k * step
    assert via_optuna(space, point)["dropout"] == 0.3
    assert via_keras_tuner(space, point)["dropout"] == 0.3
    assert resolve_config(space, point)["dropout"] == 0.3


def test_keras_tuner_declarations(space: SearchSpace) -> None:
    hp = declare_hyperparameters(space)
    by_name = {entry.name: entry for entry in hp.space}
    assert type(by_name["n_neurons"]).__name__ == "Int" and by_name["n_neurons"].sampling == "log"
    assert type(by_name["learning_rate"]).__name__ == "Float" and by_name["learning_rate"].sampling == "log"
    # Stepped and grid-only floats are Choices: every value Optuna and the grid can give is there.
    assert list(by_name["dropout"].values) == [0.0, 0.1, 0.2, 0.3]
    assert list(by_name["momentum"].values) == [0.0, 0.9]
    assert list(by_name["optimizer"].values) == ["adam", "sgd(momentum=0.9)"]


def test_optuna_distributions(space: SearchSpace) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    distributions = to_distributions(space)
    assert distributions["n_neurons"] == IntDistribution(8, 32, log=True)
    assert distributions["dropout"] == FloatDistribution(0.0, 0.3, step=0.1)
    assert distributions["learning_rate"] == FloatDistribution(0.001, 0.1, log=True)
    assert distributions["momentum"] == CategoricalDistribution([0.0, 0.9])


def test_optuna_grid_sampler_covers_the_sklearn_grid() -> None:
    import optuna

    small = space_from_dict({"params": {
        "n_hidden": {"type": "int", "low": 1, "high": 2},
        "dropout": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.1},
        "learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True, "grid": [0.001, 0.01]},
    }})
    from sklearn.model_selection import ParameterGrid

    from_sklearn = {tuple(sorted(resolve_config(small, config_from_sklearn_params(entry)).items()))
                    for entry in ParameterGrid(to_param_grid(small))}
    seen = set()

    def objective(trial: optuna.Trial) -> float:
        seen.add(tuple(sorted(resolve_config(small, suggest_point(small, trial)).items())))
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(to_grid_search_space(small), seed=0))
    study.optimize(objective, n_trials=small.grid_size())
    assert seen == from_sklearn and len(seen) == 12


def test_param_distributions_sample_valid_points(space: SearchSpace) -> None:
    from scipy import stats
    from sklearn.model_selection import ParameterSampler

    distributions = to_param_distributions(space)
    assert distributions["model__dropout"] == [0.0, 0.1, 0.2, 0.3]
    assert distributions["model__momentum"] == [0.0, 0.9]
    assert distributions["batch_size"] == [16, 32]
    assert isinstance(distributions["model__n_hidden"], type(stats.randint(1, 4)))
    neurons = set()
    for params in ParameterSampler(distributions, n_iter=40, random_state=0):
        point = config_from_sklearn_params(params)
        config = resolve_config(space, point)
        assert 0.001 <= config["learning_rate"] <= 0.1 and type(config["learning_rate"]) is float
        assert type(config["n_neurons"]) is int
        neurons.add(config["n_neurons"])
    assert min(neurons) >= 8 and max(neurons) <= 32 and len(neurons) > 5


def test_grid_compilers_refuse_continuous_space() -> None:
    continuous = space_from_dict({"params": {"learning_rate": {"type": "float", "low": 0.001, "high": 0.1}}},
                                 "lr.yaml")
    for compile_grid in (to_param_grid, to_grid_search_space):
        with pytest.raises(SpaceError, match=r"^lr\.yaml: parameter 'learning_rate': a float range has no"):
            compile_grid(continuous)


def test_presets_compile_for_every_engine() -> None:
    for name in ("default", "absenteeism-grid"):
        space = load_space(name)
        assert set(declare_hyperparameters(space).values) == set(space.params)
        assert set(to_distributions(space)) == set(space.params)
        assert set(config_from_sklearn_params({key: 0 for key in to_param_grid(space)})) == set(space.params)
