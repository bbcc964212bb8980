"""A user's training function as a trial: ``fit(params, report) -> float``.

A space that names ``train: package.module:fit`` trains no Keras model of ours: each trial calls the
user's function with the trial's resolved configuration and a ``report`` callable, as Optuna's objective
gets its trial and Ray Tune's trainable its ``tune.report``:

- ``params`` holds the space's tuned and fixed values and ``epochs``: the most epochs ``report`` may reach
  in this run (a Hyperband round or a successive-halving rung gives less than the space's ``epochs``);
- ``report(epoch, **metrics)`` (epochs counted from 1, increasing) records the epoch through the trial's
  one epoch sink (curves, live progress, the service), hands the objective to the engine's pruner, and
  raises :class:`TrialPruned` when the trial should stop: the engine's pruner said so, or ``epoch``
  passed the run's budget. The function lets it pass (it catches nothing); the runner ends the trial;
- the return value is the objective value, a finite number; anything else fails the trial with one
  sentence. An exception inside the function fails its trial only; Ctrl-C interrupts it (retried on
  resume), as for Keras trials.

A trial the pruner stopped is PRUNED with the last objective it reported. A trial that reported past its
budget is scored by the last objective reported within it (FAILED when it reported none), as a Keras fit
stopped at the round's last epoch is.

A study with a training function loads no data of ours: :class:`NoData` stands for the data such a study
records (dataset kind ``none``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import interrupts
from .fit import NonFiniteLossError, non_finite_loss

if TYPE_CHECKING:
    from .runner import Attempt, TrialOutcome

#: What the engine's pruner is asked after each reported epoch: (epoch from 1, objective value) -> stop?
#: Called only when the epoch reported the objective as a finite number.
ShouldPrune = Callable[[int, float], bool]

#: The dataset reference of a study whose training function loads its own data.
NO_DATA_KIND = "none"


class TrialPruned(Exception):  # noqa: N818 - named as Optuna's and KerasTuner's signal users know
    """Raised by ``report`` when the trial should stop: the engine's pruner decided so, or the epoch passed
    the run's budget (``params["epochs"]``). A training function lets it pass; the runner records the
    trial (PRUNED, or scored by its last objective within the budget)."""


class ReportError(ValueError):
    """``report`` was called with something it cannot record (the sentence says what must hold)."""


@dataclass
class FunctionReporter:
    """The ``report`` a training function gets for one trial (see the module docstring).

    Args:
        attempt: the trial in training (its epochs go to ``attempt.record_epoch``).
        objective: the study's objective metric name.
        budget: the most epochs ``report`` may reach in this run.
        should_prune: the engine's pruner, or None when the engine prunes nothing per epoch.
    """

    attempt: Any
    objective: str
    budget: int
    should_prune: ShouldPrune | None = None
    #: The last epoch reported (0: none yet).
    last_epoch: int = 0
    #: The last value of each metric reported within the budget.
    metrics: dict[str, float] = field(default_factory=dict)
    #: The last finite objective reported within the budget, if any.
    objective_value: float | None = None
    #: Why ``report`` stopped the trial: "pruned" (the engine's pruner) or "budget"; None while it runs.
    stopped: str | None = None
    #: The epoch that was past the budget, when ``stopped`` is "budget".
    past_epoch: int | None = None

    def report(self, epoch: int, **metrics: Any) -> None:
        """Record ``epoch`` (counted from 1) with ``metrics``; raise ``TrialPruned`` when the trial stops.

        Args:
            epoch: the epoch just finished, from 1, each call greater than the last.
            **metrics: metric values (numbers), e.g. ``val_accuracy=0.91, loss=0.3``.

        Raises:
            TrialPruned: the engine's pruner stops the trial, or ``epoch`` is past the run's budget.
            ReportError: ``epoch`` is no integer above the last one, or a metric is not a number.
            NonFiniteLossError: ``loss`` is NaN or infinite (the trial fails, as a Keras trial does).
        """
        interrupts.raise_if_requested()  # an interrupt dropped inside a finalizer (hpsearch.interrupts)
        if self.stopped is not None:  # the function caught the signal and reported on: stop it again
            raise TrialPruned(f"the trial was stopped ({self.stopped}) and reported again")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= self.last_epoch:
            raise ReportError(f"report() takes epochs counted from 1, each greater than the last "
                              f"({self.last_epoch}), but got epoch={epoch!r}")
        values = {name: _number(name, value) for name, value in metrics.items()}
        if epoch > self.budget:
            self.stopped, self.past_epoch = "budget", epoch
            raise TrialPruned(f"epoch {epoch} is past this run's budget of {self.budget} epochs")
        self.last_epoch = epoch
        # Stored 0-based, as Keras numbers the epochs of our own trials.
        self.attempt.record_epoch(epoch - 1, values)
        self.metrics.update(values)
        loss = values.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(non_finite_loss(loss, epoch - 1))
        value = values.get(self.objective)
        if value is None or not math.isfinite(value):
            return
        self.objective_value = value
        if self.should_prune is not None and self.should_prune(epoch, value):
            self.stopped = "pruned"
            raise TrialPruned(f"pruned at epoch {epoch}")


def _number(name: str, value: Any) -> float:
    """A reported metric as a float; ReportError when it is not a number."""
    if isinstance(value, str | bytes | bool) or value is None:
        raise ReportError(f"report() metric {name!r} must be a number, but got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ReportError(f"report() metric {name!r} must be a number, but got {value!r}") from None


def returned_value(reference: str, objective: str, value: Any) -> tuple[float | None, str | None]:
    """The objective value a training function returned, or why it is none: ``(value, None)`` or
    ``(None, sentence)``."""
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    what = f"training function {reference} returned {shown} ({type(value).__name__})"
    must = f"it must return a finite number, the value of objective '{objective}'"
    if isinstance(value, str | bytes | bool) or value is None:
        return None, f"{what}; {must}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"{what}; {must}"
    if not math.isfinite(number):
        return None, f"training function {reference} returned {number}; {must}"
    return number, None


def train_function(
    attempt: Attempt,
    reference: str,
    config: Mapping[str, Any],
    *,
    epochs: int | None = None,
    should_prune: ShouldPrune | None = None,
) -> TrialOutcome:
    """Run the training function ``reference`` on ``config`` as ``attempt``'s trial.

    Args:
        attempt: the trial in training (the sink of its epochs).
        reference: the space's ``train`` reference (``package.module:function``).
        config: the trial's resolved configuration (tuned, fixed and ``epochs``).
        epochs: this run's epoch budget (a Hyperband round, a halving rung); None: ``config["epochs"]``.
        should_prune: the engine's per-epoch pruner, or None.

    Returns:
        How the trial ended: COMPLETE with the returned value, PRUNED with the last objective reported,
        or FAILED with one sentence (a value that is no finite number, a misused ``report``).

    Raises:
        Exception: whatever the function raised (the runner fails the trial with it), KeyboardInterrupt.
    """
    return run_training_function(attempt, reference, function_params(config, epochs),
                                 attempt.runner.ctx.study.objective, should_prune=should_prune)


def function_params(config: Mapping[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """What the training function gets: ``config`` without the function's reference, ``epochs`` set to
    this run's budget when given."""
    from hpsearch.spaces import user_params

    params = user_params(config)
    if epochs is not None:
        params["epochs"] = int(epochs)
    return params


def run_training_function(
    sink: Any,
    reference: str,
    params: dict[str, Any],
    objective: str,
    *,
    should_prune: ShouldPrune | None = None,
) -> TrialOutcome:
    """Call the training function ``reference`` with ``params``, its epochs going to ``sink.record_epoch``
    (an ``Attempt`` here, a collector in a Dask task); see ``train_function``."""
    from hpsearch.spaces import import_function

    from .runner import TrialOutcome

    budget = int(params.get("epochs", 1))
    function = import_function(reference, "training function")
    reporter = FunctionReporter(sink, objective, budget, should_prune)
    try:
        returned = function(params, reporter.report)
    except TrialPruned:
        returned = None
        if reporter.stopped is None:  # raised by the function itself: as Optuna's TrialPruned, pruned
            reporter.stopped = "pruned"
    except ReportError as error:
        return TrialOutcome.failed(str(error), reporter.metrics)
    metrics = dict(reporter.metrics)
    if reporter.stopped == "pruned":
        return TrialOutcome.pruned(reporter.objective_value, metrics)
    if reporter.stopped == "budget":
        if reporter.objective_value is None:
            return TrialOutcome.failed(
                f"training function {reference} reported epoch {reporter.past_epoch}, past this run's "
                f"budget of {budget} epochs (params['epochs']), without reporting objective '{objective}' "
                "before it", metrics)
        return TrialOutcome.complete(reporter.objective_value, metrics)
    value, problem = returned_value(reference, objective, returned)
    if problem is not None:
        return TrialOutcome.failed(problem, metrics)
    assert value is not None
    metrics[objective] = value
    return TrialOutcome.complete(value, metrics)


# -- a training function as a task of another process (a Dask worker) ------------------------------------
@dataclass(frozen=True)
class FunctionTask:
    """A training function's trial as a picklable task: the worker imports the function by ``reference``."""

    reference: str
    params: dict[str, Any]
    objective: str


@dataclass(frozen=True)
class FunctionReport:
    """What a function task sends back: every epoch reported (0-based, with its metrics) and how it ended."""

    epochs: list[tuple[int, dict[str, float]]]
    outcome: TrialOutcome


class _EpochCollector:
    def __init__(self) -> None:
        self.epochs: list[tuple[int, dict[str, float]]] = []

    def record_epoch(self, epoch: int, logs: Mapping[str, Any] | None) -> None:
        self.epochs.append((epoch, dict(logs or {})))


def run_function_task(task: FunctionTask) -> FunctionReport:
    """Run ``task`` here (a Dask worker), collecting its epochs; an error of the function fails the trial
    (its sentence in the outcome), as in the process that runs the study.

    Args:
        task: the trial's function reference, parameters and objective.

    Returns:
        The epochs reported and the outcome, for ``take_function_report`` in the study's process.
    """
    from .fit import describe_error
    from .runner import TrialOutcome

    collector = _EpochCollector()
    try:
        outcome = run_training_function(collector, task.reference, task.params, task.objective)
    except NonFiniteLossError as error:
        outcome = TrialOutcome.failed(str(error))
    except Exception as error:  # noqa: BLE001 - the trial's own failure, recorded by the study's process
        outcome = TrialOutcome.failed(describe_error(error))
    return FunctionReport(collector.epochs, outcome)


def take_function_report(attempt: Attempt, report: FunctionReport) -> TrialOutcome:
    """Record every epoch a function task reported, in order, through ``attempt``; return its outcome."""
    for epoch, logs in report.epochs:
        attempt.record_epoch(epoch, logs)
    return report.outcome


@dataclass(frozen=True)
class NoData:
    """The data of a study whose training function loads its own: nothing to load, split or fingerprint.

    It answers what a study records and shows of its data (reference, fingerprint, summary); nothing of
    ours trains on it.
    """

    reference: dict[str, Any]
    task: str = "auto"
    fingerprint: str = NO_DATA_KIND
    n_classes: int = 0
    class_names: list[str] | None = None
    feature_names: list[str] = field(default_factory=list)
    #: What loading left out or changed (a Dataset's notes): nothing, since nothing is loaded.
    notes: list[str] = field(default_factory=list)

    @classmethod
    def for_function(cls, reference: str, task: str = "auto") -> NoData:
        """The data record of a study training ``reference`` (a ``module:function``)."""
        return cls({"kind": NO_DATA_KIND, "source": None, "train": reference, "task": task}, task)

    @property
    def name(self) -> str:
        return NO_DATA_KIND

    def summary(self) -> str:
        """One line for the CLI."""
        return f"no data of hpsearch's: training function {self.reference.get('train')} loads its own"


def is_no_data(reference: Mapping[str, Any]) -> bool:
    """Whether a stored dataset reference is that of a training-function study (no data)."""
    return reference.get("kind") == NO_DATA_KIND
