"""The contenders of the LCBench benchmark: hpsearch's engines and algorithms, and the plain anchors.

Every contender searches one LCBench task's space (:func:`lcbench.space`) for one seed with a budget in
epochs (``trials`` full trials x 52 epochs). hpsearch's contenders run through the public API,
``hpsearch.run(space, train=lcbench.counted_fit, ...)``, in this process (``in_process=True``) against a
SQLite file; the anchors drive Optuna and KerasTuner directly on the same surrogate, with no hpsearch.

What a run returns is its *trace*: one point per ended trial, in the order trials ended, holding the
epochs trained so far (every epoch a trial reported, a Hyperband round or a halving rung counting its
epochs from 1 again), the surrogate's training seconds so far, and the trial's last reported validation
accuracy (a pruned trial counts with the value it reached). Only points within the budget count.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lcbench


@dataclass(frozen=True)
class Contender:
    """One algorithm of the benchmark."""

    label: str
    #: "hpsearch" (through hpsearch.run) or "anchor" (the library driven directly)
    kind: str
    engine: str = ""
    algorithm: str | None = None
    pruner: str | None = None
    #: engine options (hpsearch) or the anchor's own settings
    options: dict[str, Any] = field(default_factory=dict)
    #: stops some trials early, so the trial count that spends the epoch budget is not known ahead
    adaptive: bool = False


CONTENDERS = (
    Contender("optuna random", "hpsearch", "optuna", "random", "none"),
    Contender("optuna tpe", "hpsearch", "optuna", "tpe", "none"),
    Contender("optuna tpe+median", "hpsearch", "optuna", "tpe", "median", adaptive=True),
    Contender("optuna tpe+hyperband", "hpsearch", "optuna", "tpe", "hyperband", adaptive=True),
    Contender("optuna random+hyperband", "hpsearch", "optuna", "random", "hyperband", adaptive=True),
    Contender("optuna tpe+asha", "hpsearch", "optuna", "tpe", "asha", adaptive=True),
    Contender("optuna random+asha", "hpsearch", "optuna", "random", "asha", adaptive=True),
    Contender("optuna bohb", "hpsearch", "optuna", "bohb", "asha", adaptive=True),
    Contender("optuna tpe+curve", "hpsearch", "optuna", "tpe", "curve", adaptive=True),
    Contender("keras-tuner random", "hpsearch", "keras-tuner", "random"),
    Contender("keras-tuner bayesian", "hpsearch", "keras-tuner", "bayesian"),
    Contender("keras-tuner hyperband", "hpsearch", "keras-tuner", "hyperband", adaptive=True,
              options={"factor": 3}),
    Contender("sklearn halving-random", "hpsearch", "sklearn", "halving-random", adaptive=True,
              options={"factor": 3}),
    Contender("plain optuna tpe", "anchor", "optuna-direct", options={"pruner": "none"}),
    Contender("plain optuna tpe+hyperband", "anchor", "optuna-direct", options={"pruner": "hyperband"},
              adaptive=True),
    Contender("plain keras-tuner hyperband", "anchor", "keras-tuner-direct", adaptive=True),
)
#: the target every contender is measured against: random search's best with the whole budget
REFERENCE = "optuna random"


class Tally:
    """What the training function trained in the current run: the trace points, within the budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.epochs = 0
        self.seconds = 0.0
        self.points: list[tuple[int, float, float]] = []

    @property
    def spent(self) -> bool:
        return self.epochs >= self.budget


_TALLY: Tally | None = None


def counted_fit(params: dict[str, Any], report: Callable[..., None]) -> float:
    """The surrogate's training function, counting its epochs and simulated seconds into the run's tally.

    Once the budget is spent a trial trains nothing more (it returns its first epoch's value unreported):
    the run's remaining trials cost next to nothing and are not counted.
    """
    tally = _TALLY
    assert tally is not None, "counted_fit runs inside a benchmark run"
    task = str(params["openml_task"])
    epochs = int(params["epochs"])
    curves = lcbench.surrogate().curve(task, params, epochs)
    accuracy = curves[lcbench.OBJECTIVE]
    if tally.spent:
        return float(accuracy[0])
    last: float | None = None
    previous = 0.0
    try:
        for index in range(epochs):
            if tally.spent:
                break  # the budget ends inside this trial: what it reached so far counts
            tally.epochs += 1
            tally.seconds += max(0.0, float(curves["time"][index]) - previous)
            previous = float(curves["time"][index])
            last = float(accuracy[index])
            report(index + 1, val_accuracy=last,
                   val_balanced_accuracy=float(curves["val_balanced_accuracy"][index]))
    finally:
        if last is not None:
            tally.points.append((tally.epochs, tally.seconds, last))
    return last if last is not None else float(accuracy[0])


def run_contender(contender: Contender, task: str, seed: int, trials: int, work: Path,
                  epochs: int = lcbench.EPOCHS) -> list[tuple[int, float, float]]:
    """Run one contender on one task and seed with a budget of ``trials`` x ``epochs`` epochs.

    Args:
        contender: the algorithm.
        task: the OpenML task id.
        seed: the run's seed.
        trials: the budget in full trials.
        work: a scratch folder (the SQLite file of hpsearch's runs).
        epochs: the epochs of a full trial.

    Returns:
        The trace: (epochs so far, simulated seconds so far, value) per ended trial within the budget.
    """
    global _TALLY
    _TALLY = tally = Tally(trials * epochs)
    try:
        if contender.kind == "hpsearch":
            _run_hpsearch(contender, task, seed, trials, work, epochs, tally)
        elif contender.engine == "optuna-direct":
            _run_optuna(contender, task, seed, epochs, tally)
        else:
            _run_keras_tuner(task, seed, epochs, tally, work)
    finally:
        _TALLY = None
    return tally.points


def _run_hpsearch(contender: Contender, task: str, seed: int, trials: int, work: Path, epochs: int,
                  tally: Tally) -> None:
    import hpsearch

    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'lcbench.db'}"
    name = f"{task}-{contender.label.replace(' ', '-').replace('+', '-')}-s{seed}"
    options = dict(contender.options)
    budget: int | None = trials
    if contender.engine == "keras-tuner" and contender.algorithm == "hyperband":
        options["max_epochs"] = epochs
        budget = None  # Hyperband's plan sets the trials; resumed below while epochs are left
    if contender.engine == "sklearn":
        budget = None  # the halving plan sets the candidates
        # Enough candidates that the plan's rungs spend about the epoch budget: each rung spends about
        # the same epochs, n_candidates x min_resources on the first.
        options.update(min_resources=1, n_candidates=max(2, trials * epochs // 4))
    common = dict(train=counted_fit, engine=contender.engine, algorithm=contender.algorithm,
                  pruner=contender.pruner, storage=storage, study=name, seed=seed, progress=False,
                  in_process=True, max_failures=1000, **options)
    if contender.engine != "optuna":
        common.pop("pruner", None)
    study = hpsearch.run(lcbench.space(task, epochs), trials=budget, **common)
    # An adaptive search spent less than the budget on its trials: continue the study until it has.
    for _ in range(30):
        if tally.spent or not contender.adaptive or contender.engine == "sklearn":
            break
        done = len(study.trials)
        per_trial = max(1.0, tally.epochs / max(1, done))
        more = max(5, math.ceil((tally.budget - tally.epochs) / per_trial * 1.1))
        study = hpsearch.run(lcbench.space(task, epochs), trials=done + more, resume=True, **common)


def _run_optuna(contender: Contender, task: str, seed: int, epochs: int, tally: Tally) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hyperband = contender.options.get("pruner") == "hyperband"
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
              if hyperband else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=pruner)
    space = lcbench.space(task, epochs)

    def objective(trial: optuna.Trial) -> float:
        params = {"openml_task": task, "epochs": epochs}
        for name, spec in space["params"].items():
            suggest = trial.suggest_int if spec["type"] == "int" else trial.suggest_float
            params[name] = suggest(name, spec["low"], spec["high"], log=spec["log"])

        def report(epoch: int, **metrics: float) -> None:
            # Steps from 0, as Optuna's examples and its Keras callback report them (and hpsearch does):
            # the pruner's first rung then falls at the same epoch as in hpsearch's runs.
            trial.report(metrics[lcbench.OBJECTIVE], epoch - 1)
            if trial.should_prune():
                raise _Pruned(metrics[lcbench.OBJECTIVE])

        try:
            return counted_fit(params, report)
        except _Pruned as pruned:
            trial.set_user_attr("value", pruned.value)
            raise optuna.TrialPruned() from None

    def stop(study: optuna.Study, _trial: Any) -> None:
        if tally.spent:
            study.stop()

    study.optimize(objective, n_trials=100_000, callbacks=[stop])


class _Pruned(Exception):  # noqa: N818 - a signal, as optuna.TrialPruned
    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


def _run_keras_tuner(task: str, seed: int, epochs: int, tally: Tally, work: Path) -> None:
    import keras_tuner

    space = lcbench.space(task, epochs)

    # The space is declared up front: KerasTuner's oracle stops at once when its space is empty.
    hyperparameters = keras_tuner.HyperParameters()
    for name, spec in space["params"].items():
        sampling = "log" if spec["log"] else "linear"
        if spec["type"] == "int":
            hyperparameters.Int(name, spec["low"], spec["high"], sampling=sampling)
        else:
            hyperparameters.Float(name, spec["low"], spec["high"], sampling=sampling)

    class SurrogateTuner(keras_tuner.Hyperband):
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
            values = trial.hyperparameters.values
            params: dict[str, Any] = {"openml_task": task, **{name: values[name] for name in space["params"]}}
            # Each round trains from epoch 1 (no checkpoint of the round before), as hpsearch's rounds do.
            params["epochs"] = int(values.get("tuner/epochs", epochs))
            return counted_fit(params, lambda epoch, **metrics: None)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if tally.spent:
                raise _BudgetSpent

    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=work))
    try:
        # Iterations enough for any budget; the search stops once the budget is spent.
        tuner = SurrogateTuner(objective=keras_tuner.Objective("score", "max"), max_epochs=epochs, factor=3,
                               hyperband_iterations=1000, seed=seed, hyperparameters=hyperparameters,
                               directory=str(scratch), project_name="kt", overwrite=True)
        try:
            tuner.search(verbose=0)
        except _BudgetSpent:
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _BudgetSpent(Exception):  # noqa: N818 - a signal that ends a KerasTuner search
    pass
