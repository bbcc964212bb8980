"""Searching a pandas DataFrame from Python: a notebook-style walk through the hpsearch Python API.

Run it as a script (``python examples/dataframe_search.py``) or cell by cell (``# %%`` marks the cells in
VS Code, PyCharm and Jupytext). It searches scikit-learn's wine table (178 rows, 13 features, 3 cultivars)
with a small budget, looks at the trials as a DataFrame, retrains the best configuration, and predicts
raw rows with the exported model. The study lands in ``hpsearch.db`` in the current folder, where
``hpsearch studies``, ``best``, ``resume`` and ``plot`` find it from the shell too.
"""

# %% The data: any DataFrame with a target column.
import hpsearch
from sklearn.datasets import load_wine

wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
wine["cultivar"] = wine["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
print(wine.head())

# %% A small search space, as a dict of the space file's shape (a preset name or a YAML path work too).
space = {
    "objective": "val_accuracy",
    "params": {
        "n_neurons": {"type": "int", "low": 8, "high": 64, "log": True},
        "learning_rate": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True},
        "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
    },
    "fixed": {"n_hidden": 1, "epochs": 5, "batch_size": 32},
}

# %% Search: Optuna's TPE with the Hyperband pruner by default (a poor trial may end PRUNED after its
# first epochs); a progress bar shows in a terminal or a notebook.
study = hpsearch.run(space, wine, target="cultivar", trials=3, study="wine-example", resume=True)
print(study)

# %% The trials as a DataFrame: one row each, params_* and metrics_* columns.
trials = study.trials_dataframe()
print(trials[["number", "state", "value", "duration", *[c for c in trials if c.startswith("params_")]]])
print("best params:", study.best_params, "best", study.objective, round(study.best_value, 4))
print(study.curves())  # the best trial's epochs

# %% Retrain the best configuration with early stopping, test it on held-out rows, export it.
retrained = study.retrain("models/wine", epochs=10, patience=3)
model, card = retrained
print("test metrics:", card["test_metrics"])

# %% Predict raw rows: the exported model holds its own preprocessing.
predictions = retrained.predict(wine.drop(columns="cultivar").head(5))
print(predictions)
print("exported to", retrained.path, "- from the shell: hpsearch predict", retrained.path, "rows.csv")
