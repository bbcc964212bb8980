"""SciKeras around our builder, against the scikit-learn installed: an incompatible upgrade of either
fails here, in CI, rather than in a user's search."""

from __future__ import annotations

import numpy as np
import pytest
from hpsearch.engines.sklearn.estimators import check_routing, make_estimator
from hpsearch.spaces import DEFAULTS, SpaceError
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV

CONFIG = {**DEFAULTS, "n_hidden": 1, "n_neurons": 8, "epochs": 2, "batch_size": 32}


def _iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return ((x - x.mean(0)) / x.std(0)).astype("float32"), y


def test_classifier_fit_score_predict_with_our_builder():
    x, y = _iris()
    estimator = make_estimator("multiclass", CONFIG, seed=0)
    assert is_classifier(estimator)
    estimator.fit(x, y)
    assert estimator.predict(x).shape == (len(y),)
    assert set(np.unique(estimator.predict(x))) <= {0, 1, 2}
    assert estimator.predict_proba(x).shape == (len(y), 3)
    assert 0.0 <= estimator.score(x, y) <= 1.0
    # The model is the builder's: one hidden layer of 8, softmax over the 3 classes, 2 epochs trained.
    dense = [layer.units for layer in estimator.model_.layers if type(layer).__name__ == "Dense"]
    assert dense == [8, 3]
    assert len(estimator.history_["loss"]) == 2


def test_regressor_fit_score_with_our_builder():
    x, y = load_diabetes(return_X_y=True)
    estimator = make_estimator("regression", CONFIG, seed=0)
    assert is_regressor(estimator)
    estimator.fit(x.astype("float32"), y.astype("float32"))
    assert np.isfinite(estimator.score(x.astype("float32"), y.astype("float32")))  # R², may be negative


def test_get_params_clone_and_set_params_route_builder_parameters():
    estimator = make_estimator("binary", CONFIG, seed=3, class_weight={0: 1.0, 1: 2.0})
    params = estimator.get_params()
    assert params["model__n_neurons"] == 8 and params["batch_size"] == 32 and params["epochs"] == 2
    assert params["class_weight"] == {0: 1.0, 1: 2.0} and params["random_state"] == 3
    copy = clone(estimator).set_params(model__n_neurons=5, model__activation="tanh", batch_size=16)
    assert copy.get_params()["model__n_neurons"] == 5 and copy.get_params()["batch_size"] == 16
    assert estimator.get_params()["model__n_neurons"] == 8, "clone must not share parameters"


def test_a_key_the_estimator_does_not_take_is_refused_before_any_fit():
    estimator = make_estimator("binary", CONFIG, seed=0)
    check_routing(estimator, ["model__n_neurons", "batch_size", "epochs"], "space.yaml")
    with pytest.raises(SpaceError, match=r"space.yaml.*'model__n_nerons'.*does not take"):
        check_routing(estimator, ["model__n_neurons", "model__n_nerons"], "space.yaml")
    with pytest.raises(SpaceError, match="'n_neurons'"):
        check_routing(estimator, ["n_neurons"], "space.yaml")  # not routed to the model


def test_gridsearchcv_runs_our_estimator_with_stratified_folds():
    x, y = _iris()
    search = GridSearchCV(make_estimator("multiclass", CONFIG, seed=0),
                          {"model__n_neurons": [4, 8]}, cv=2, scoring="accuracy", error_score="raise")
    search.fit(x, y)
    assert search.best_params_["model__n_neurons"] in (4, 8)
    assert len(search.cv_results_["mean_test_score"]) == 2
    # Stratified (we are a classifier to scikit-learn): iris sorted by class still has every class per fold.
    assert np.isfinite(search.cv_results_["split0_test_score"]).all()


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_fits_on_a_reused_compiled_model_score_exactly_as_fresh_fits(task):
    """The engine's fold fits train the cached compiled model of their structure (no tracing), restarted
    from the fresh model's weights, dropout seeds and optimizer state: every fold scores exactly as a fit
    of a freshly built model, whatever fit of the same structure ran before on the cached one."""
    from hpsearch.training.compiled_models import CompiledModels
    from hpsearch.training.fold_fitting import fit_and_score
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import KFold

    if task == "regression":
        x, y = load_diabetes(return_X_y=True)
        x, y = ((x - x.mean(0)) / x.std(0)).astype("float32"), y.astype("float32")
    else:
        x, y = _iris()
    base = make_estimator(task, {**CONFIG, "dropout": 0.2, "n_hidden": 2}, seed=0)
    scorer = check_scoring(base, "r2" if task == "regression" else "accuracy")
    splits = list(KFold(2, shuffle=True, random_state=0).split(x, y))
    # Two structures (adam, clipped sgd), each fitted with several initializers, learning rates and batch
    # sizes: the later fits of a structure restart the model the first one traced.
    candidates = [
        {"model__optimizer": optimizer, "model__learning_rate": rate, "model__kernel_initializer": init,
         "batch_size": batch}
        for optimizer in ("adam", "sgd(clipnorm=1.0)")
        for rate, init, batch in ((0.01, "he_normal", 32), (0.001, "glorot_uniform", 16))
    ]

    def scores(compiled_models):
        return [fit_and_score(base, params, x, y, train, test, scorer, fold=fold,
                              compiled_models=compiled_models).score
                for params in candidates for fold, (train, test) in enumerate(splits)]

    compiled_models = CompiledModels()
    reused = scores(compiled_models)
    # A regression model's output layer holds its fold's target mean and spread: one structure per fold.
    structures = 2 * (len(splits) if task == "regression" else 1)
    assert compiled_models.misses == structures and compiled_models.hits == len(reused) - structures
    assert None not in reused
    assert reused == scores(None)
