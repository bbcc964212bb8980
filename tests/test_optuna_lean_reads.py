"""The optuna engine's storage keeps what a running trial's pruner reads in memory: the decisions and
everything written to the database are those of Optuna's own storage."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from hpsearch.engines.optuna.lean_reads import LeanReadStorage


def _search(storage, pruner) -> list[tuple]:
    study = optuna.create_study(study_name="same", storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=3), pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 0.01, 1.0, log=True)
        width = trial.suggest_int("width", 1, 9)
        value = 0.0
        for step in range(27):
            value = (1 - math.exp(-rate * (step + 1))) * (1 - abs(width - 5) / 10)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=30)
    # Read back through a plain storage: what another worker or the optuna CLI would see.
    stored = optuna.load_study(study_name="same", storage=study._storage._backend.url)
    return [(t.number, t.state, t.params, t.intermediate_values, t.system_attrs, t.value)
            for t in stored.get_trials(deepcopy=False)]


@pytest.mark.parametrize("pruner", ["hyperband", "successive-halving"])
def test_a_pruned_search_through_the_lean_storage_matches_optunas_own(tmp_path: Path, pruner: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def make():
        if pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)

    lean = _search(LeanReadStorage(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'lean.db'}")), make())
    plain = _search(f"sqlite:///{tmp_path / 'plain.db'}", make())
    assert lean == plain
    states = [state for _, state, *_ in lean]
    # The comparison means something: trials were pruned at rungs, and others completed.
    assert states.count(optuna.trial.TrialState.PRUNED) >= 5
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 3
    assert any("completed_rung_1" in attrs for *_, attrs, _ in lean)


def test_a_running_trial_sees_the_attributes_it_wrote_and_a_finished_one_is_forgotten(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'attrs.db'}"
    storage = LeanReadStorage(optuna.storages.RDBStorage(url))
    study = optuna.create_study(study_name="attrs", storage=storage)
    trial = study.ask()
    assert storage.get_trial_system_attrs(trial._trial_id) == {}
    storage.set_trial_system_attr(trial._trial_id, "rung", (1, 2))
    # Kept as the database gives it back: JSON turns the tuple into a list.
    assert storage.get_trial_system_attrs(trial._trial_id) == {"rung": [1, 2]}
    study.tell(trial, 0.5)
    # Finished, it is read from Optuna's storage as any finished trial.
    assert storage.get_trial_system_attrs(trial._trial_id) == {"rung": [1, 2]}
    assert trial._trial_id not in storage._running_attrs
    assert storage.get_study_id_from_name("attrs") == study._study_id
    storage.delete_study(study._study_id)
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("attrs")


def test_the_lean_storage_pickles_as_optunas_does(tmp_path: Path) -> None:
    import pickle

    storage = LeanReadStorage(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'pickled.db'}"))
    study = optuna.create_study(study_name="pickled", storage=storage)
    trial = study.ask()
    storage.get_trial_system_attrs(trial._trial_id)
    copy = pickle.loads(pickle.dumps(storage))
    # The copy runs none of this process's trials: it reads their attributes from the database.
    assert copy._running_attrs == {} and storage._running_attrs == {trial._trial_id: {}}
    assert copy.get_study_id_from_name("pickled") == study._study_id
