# %% [markdown]
# # A scikit-learn estimator tuned through a training function, with successive halving
#
# hpsearch trains Keras models of its own, but a space may instead name a *training function*:
# `fit(params, report) -> float`. Here the function trains scikit-learn's `SGDClassifier` on the bundled
# `digits` data one pass (`partial_fit`) per epoch, reports the validation accuracy of each epoch, and
# returns the last one. The `sklearn` engine runs `HalvingGridSearchCV`'s plan over it: every candidate of
# the grid gets 1 epoch, the best third 3 epochs, the best of those 9. Candidates left on lower rungs are
# recorded PRUNED; the last rung's trial is COMPLETE.
#
# Run it as a script: `python examples/sklearn_halving.py` (it writes `sklearn_halving.db` and a space
# file into the current folder).

# %%
from __future__ import annotations

import sys
from pathlib import Path

import hpsearch

# %% [markdown]
# ## The training function
#
# `params` holds the tuned values (`alpha`, `loss`) and `epochs`: the most epochs `report` may reach in
# this run (the rung's budget). `report(epoch, **metrics)` records each epoch; the function catches
# nothing it raises.

# %%
def load_split():
    """The bundled digits data, split once into train and validation rows (the same for every trial)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def fit(params, report):
    """Train an SGDClassifier one pass per epoch; return the last epoch's validation accuracy."""
    import numpy as np
    from sklearn.linear_model import SGDClassifier

    x_train, x_val, y_train, y_val = load_split()
    model = SGDClassifier(loss=params["loss"], alpha=params["alpha"], random_state=0)
    classes = np.unique(y_train)
    accuracy = 0.0
    for epoch in range(1, params["epochs"] + 1):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(model.score(x_val, y_val))
        report(epoch, val_accuracy=accuracy)
    return accuracy


# %% [markdown]
# ## The space
#
# `train:` names the function as `module:function`; `objective` names the metric it returns (accuracy is
# maximised). A grid of 3 x 3 candidates, at most 9 epochs each.

# %%
SPACE = """\
train: sklearn_halving:fit
objective: val_accuracy
params:
  alpha: {type: categorical, choices: [0.00001, 0.001, 0.1]}
  loss: {type: categorical, choices: [hinge, log_loss, modified_huber]}
fixed: {epochs: 9}
"""


# %% [markdown]
# ## The search
#
# One small function: the sklearn engine's successive halving over the grid, trained in this process.

# %%
def search(space_file: Path, storage: str) -> hpsearch.Study:
    """Run the halving search over ``space_file``; return the study."""
    return hpsearch.run(space_file, engine="sklearn", algorithm="halving-grid", study="sgd-halving",
                        storage=storage, progress=False, in_process=True)


# %%
if __name__ == "__main__":
    # The space names this file as module ``sklearn_halving``: its folder must be importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    space_file = Path("sklearn_halving.yaml")
    space_file.write_text(SPACE)
    storage = "sqlite:///sklearn_halving.db"
    study = search(space_file, storage)

    # %% [markdown]
    # ## The trials, rung by rung

    # %%
    trials = study.trials
    for trial in trials:
        rung = (trial.engine_trial_id or "").partition(":")[0]
        print(f"#{trial.number:2d} rung {rung} {trial.state.value:8s} epochs {trial.epochs_run} "
              f"value {trial.value:.3f} {dict(trial.params)}")
    lower = [trial for trial in trials if trial.state.value == "PRUNED"]
    best = max((trial for trial in trials if trial.state.value == "COMPLETE"), key=lambda trial: trial.value)
    print(f"{len(lower)} of {len(trials)} trials ended on lower rungs; best {dict(best.params)} "
          f"with val_accuracy {best.value:.3f} after {best.epochs_run} epochs")
