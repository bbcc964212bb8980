"""Learning-curve early stopping (``--pruner curve``): stop a trial whose curve, extrapolated to its last
epoch, is unlikely to beat the best trial so far.

The method is a simplified form of Domhan, Springenberg and Hutter, "Speeding up Automatic
Hyperparameter Optimization of Deep Neural Networks by Extrapolation of Learning Curves" (IJCAI 2015).
They fit a weighted ensemble of 11 parametric curve families by MCMC and stop a run when the probability
that its last epoch beats the best seen so far falls below 5%. Here, to stay offline and cheap (a few
milliseconds per decision, numpy and scipy only):

- three families, fitted by bounded least squares to the curve so far (as a loss: lower is better):
  ``pow3`` ``c + a * t**-alpha``, ``exp3`` ``c + a * exp(-b t)`` and ``ilog2`` ``c + a / log(t + 1)``
  (a fast, a middling and a slow-converging shape, so the ensemble is neither only optimistic nor only
  pessimistic);
- the families are averaged with weights inverse to their residual mean square; the predictive spread is
  the weighted residual variance plus the spread between the families' predictions;
- every stored curve of the study that ran to its end (the study's completed trials and its
  ``--warm-start`` copies, which Optuna holds as completed trials with their curves) calibrates that
  spread: each is cut at the same epoch, extrapolated the same way, and the root mean square of the
  errors made on their known last epochs is added to the spread. A family that the study's own curves
  show to extrapolate badly therefore stops nothing it should not;
- the probability that the trial ends better than the best completed value is read from a normal
  distribution with that mean and spread; the trial stops when it is below 5%, as in Domhan et al.

Decisions start after a tenth of the trial's epochs (at least 3 epochs, as the fit needs points) and
are taken every tenth of its epochs, never at its last one; no trial is stopped before one has completed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Stop when the probability of beating the best completed trial is below this (Domhan et al.'s 5%).
STOP_PROBABILITY = 0.05
#: Completed curves used to calibrate the spread (the most recent ones; a bound on the cost).
CALIBRATION_CURVES = 12
#: Fewest points a family is fitted to.
MIN_POINTS = 3


def _pow3(t: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c + a * np.power(t, -alpha)


def _exp3(t: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c + a * np.exp(-b * t)


def _ilog2(t: np.ndarray, c: float, a: float) -> np.ndarray:
    return c + a / np.log(t + 1.0)


def _families(z: np.ndarray) -> list[tuple[Any, list[float], tuple[list[float], list[float]]]]:
    """Each family with a starting point and bounds scaled to the curve ``z``."""
    span = float(np.ptp(z)) or 1.0
    low, last = float(np.min(z)), float(z[-1])
    inf = np.inf
    return [
        (_pow3, [last - span * 0.1, span, 0.5], ([-inf, 0.0, 1e-3], [inf, inf, 10.0])),
        (_exp3, [last, span, 0.3], ([-inf, 0.0, 1e-4], [inf, inf, 10.0])),
        (_ilog2, [low - span * 0.1, span], ([-inf, 0.0], [inf, inf])),
    ]


def extrapolate(z: Sequence[float], last_epoch: int) -> tuple[float, float]:
    """The ensemble's prediction of a loss-like curve ``z`` (epochs 1..len(z)) at ``last_epoch``.

    Args:
        z: the curve so far, lower is better (a maximized metric negated).
        last_epoch: the epoch to predict.

    Returns:
        (mean, spread): the weighted prediction and its standard deviation (residual and between-family).
    """
    from scipy.optimize import curve_fit

    y = np.asarray(z, dtype=float)
    t = np.arange(1, len(y) + 1, dtype=float)
    predictions, weights, residuals = [], [], []
    for family, start, bounds in _families(y):
        try:
            fitted, _ = curve_fit(family, t, y, p0=start, bounds=bounds, maxfev=400)
        except (RuntimeError, ValueError):
            continue
        prediction = float(family(np.array([float(last_epoch)]), *fitted)[0])
        mse = float(np.mean((family(t, *fitted) - y) ** 2))
        if not (math.isfinite(prediction) and math.isfinite(mse)):
            continue
        predictions.append(prediction)
        residuals.append(mse)
        weights.append(1.0 / (mse + 1e-12))
    if not predictions:
        return float(y[-1]), float(np.std(y)) or 1.0
    w = np.asarray(weights) / np.sum(weights)
    mean = float(np.dot(w, predictions))
    between = float(np.dot(w, (np.asarray(predictions) - mean) ** 2))
    within = float(np.dot(w, residuals))
    return mean, math.sqrt(between + within)


def decision_epochs(last_epoch: int) -> list[int]:
    """The epochs at which a trial of ``last_epoch`` epochs is judged (see the module docstring)."""
    every = max(1, last_epoch // 10)
    first = max(MIN_POINTS, every)
    return list(range(first, last_epoch, every))


def probability_to_beat(z: Sequence[float], last_epoch: int, best: float,
                        calibration: float = 0.0) -> float:
    """The probability that the loss-like curve ``z`` ends (or already is) below ``best``.

    Args:
        z: the curve so far, lower is better.
        last_epoch: the trial's last epoch.
        best: the best (lowest) final value of the completed trials.
        calibration: the extrapolation error the study's completed curves show at this epoch (RMS).

    Returns:
        A probability in [0, 1].
    """
    if min(z) <= best:
        return 1.0
    mean, spread = extrapolate(z, last_epoch)
    spread = math.sqrt(spread ** 2 + calibration ** 2)
    if spread <= 0:
        return 1.0 if mean <= best else 0.0
    return 0.5 * (1.0 + math.erf((best - mean) / (spread * math.sqrt(2.0))))


def _curve(trial: Any, sign: float, upto: int | None = None) -> list[float] | None:
    """The trial's stored curve as a loss (epochs 1..upto), or None when an epoch is missing or not
    finite."""
    values = trial.intermediate_values
    count = len(values) if upto is None else upto
    curve = []
    for step in range(count):
        value = values.get(step)
        if value is None or not math.isfinite(value):
            return None
        curve.append(sign * float(value))
    return curve


class _Calibration:
    """The extrapolation errors of completed curves cut at an epoch, cached by (trial id, epoch)."""

    def __init__(self) -> None:
        self.errors: dict[tuple[int, int], float] = {}

    def rms(self, completed: list[Any], epoch: int, sign: float) -> float:
        squares = []
        for trial in completed[-CALIBRATION_CURVES:]:
            key = (trial._trial_id, epoch)
            if key not in self.errors:
                full = _curve(trial, sign)
                if full is None or len(full) <= epoch:
                    continue
                mean, _ = extrapolate(full[:epoch], len(full))
                self.errors[key] = mean - full[-1]
            squares.append(self.errors[key] ** 2)
        return math.sqrt(sum(squares) / len(squares)) if squares else 0.0


def curve_pruner(max_epochs: int) -> Any:
    """Optuna pruner stopping trials whose extrapolated curve is unlikely to beat the best (module doc).

    Args:
        max_epochs: the space's most epochs (a trial whose ``epochs`` is tuned ends at its own).

    Returns:
        An ``optuna.pruners.BasePruner``.
    """
    import optuna
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    class CurvePruner(optuna.pruners.BasePruner):
        def __init__(self) -> None:
            self.max_epochs = max_epochs
            self.calibration = _Calibration()

        def prune(self, study: Any, trial: Any) -> bool:
            step = trial.last_step
            if step is None:
                return False
            epoch = step + 1
            last = int(trial.params.get("epochs", self.max_epochs))
            if epoch not in decision_epochs(last):
                return False
            sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
            completed = [other for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                         if other.value is not None and math.isfinite(other.value)]
            if not completed:
                return False
            z = _curve(trial, sign, epoch)
            if z is None:
                return False
            best = min(sign * float(other.value) for other in completed)
            calibration = self.calibration.rms(completed, epoch, sign)
            return probability_to_beat(z, last, best, calibration) < STOP_PROBABILITY

    return CurvePruner()
