"""Learning-curve early stopping (``--pruner curve``): stop a trial whose curve, extrapolated to its last
epoch, is unlikely to beat the best trial so far.

The method is a simplified form of Domhan, Springenberg and Hutter, "Speeding up Automatic
Hyperparameter Optimization of Deep Neural Networks by Extrapolation of Learning Curves" (IJCAI 2015).
They fit a weighted ensemble of 11 parametric curve families by MCMC and stop a run when the probability
that its last epoch beats the best seen so far falls below 5%. Here, to stay offline and cheap (a few
millisecond per decision, numpy only):

- three of their families, fitted by least squares to the curve so far (as a loss: lower is better,
  falling: ``a >= 0``): ``pow3`` ``c + a * t**-alpha``, ``exp3`` ``c + a * exp(-b t)`` and ``ilog2``
  ``c + a / log(t + 1)`` (a fast, a middling and a slow-converging shape, so the ensemble is neither only
  optimistic nor only pessimistic); ``alpha`` and ``b`` run over a fixed grid, for each of which the fit
  is linear (variable projection), so a fit is a few matrix products and cannot fail to converge;
- the families are averaged with weights inverse to their residual mean square (plus the median one, so
  that comparable fits share the weight); the predictive spread is the weighted residual variance plus
  the variance between the families' predictions;
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
#: Fewest epochs a curve is judged on.
MIN_POINTS = 3


#: The nonlinear parameter's grid of each family (``alpha`` of pow3, ``b`` of exp3): for each value the
#: family is linear in ``c`` and ``a``, so a fit is one small least-squares solve per grid value
#: (variable projection) instead of an iterative nonlinear fit, and never fails to converge.
_POW3_ALPHAS = np.geomspace(0.02, 4.0, 48)
_EXP3_RATES = np.geomspace(0.005, 3.0, 48)


def _bases(t: np.ndarray) -> list[np.ndarray]:
    """Each family's shape functions at epochs ``t``, one row per grid value: the family at that grid
    value is ``c + a * shape`` (pow3 ``t**-alpha``, exp3 ``exp(-b t)``, ilog2 ``1 / log(t+1)``)."""
    return [
        np.power(t[None, :], -_POW3_ALPHAS[:, None]),
        np.exp(-_EXP3_RATES[:, None] * t[None, :]),
        (1.0 / np.log(t + 1.0))[None, :],
    ]


def _fit_family(shapes: np.ndarray, shapes_at_last: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Least squares of ``y ~ c + a * shape`` (``a >= 0``: the loss falls) for every grid row; the
    best row's (prediction at the last epoch, residual mean square), or None when no row fits."""
    centered = shapes - shapes.mean(axis=1, keepdims=True)
    norms = np.sum(centered ** 2, axis=1)
    ok = norms > 1e-12
    if not np.any(ok):
        return None
    slopes = np.where(ok, centered @ (y - y.mean()) / np.where(ok, norms, 1.0), 0.0)
    slopes = np.maximum(slopes, 0.0)
    intercepts = y.mean() - slopes * shapes.mean(axis=1)
    fitted = intercepts[:, None] + slopes[:, None] * shapes
    mse = np.mean((fitted - y[None, :]) ** 2, axis=1)
    best = int(np.argmin(mse))
    return float(intercepts[best] + slopes[best] * shapes_at_last[best]), float(mse[best])


def extrapolate(z: Sequence[float], last_epoch: int) -> tuple[float, float]:
    """The ensemble's prediction of a loss-like curve ``z`` (epochs 1..len(z)) at ``last_epoch``.

    Args:
        z: the curve so far, lower is better (a maximized metric negated).
        last_epoch: the epoch to predict.

    Returns:
        (mean, spread): the weighted prediction and its standard deviation (residual and between-family).
    """
    y = np.asarray(z, dtype=float)
    t = np.arange(1, len(y) + 1, dtype=float)
    at_last = _bases(np.array([float(last_epoch)]))
    fits = [_fit_family(shapes, last[:, 0], y) for shapes, last in zip(_bases(t), at_last, strict=True)]
    fits = [fit for fit in fits if fit is not None and all(map(math.isfinite, fit))]
    if not fits:
        return float(y[-1]), float(np.std(y))
    predictions = np.array([prediction for prediction, _ in fits])
    residuals = np.array([mse for _, mse in fits])
    # Families that fit about as well share the weight (the median residual as a floor), so one family
    # that happens to fit the first epochs exactly does not silence the others' disagreement.
    weights = 1.0 / (residuals + float(np.median(residuals)) + 1e-12)
    weights /= weights.sum()
    mean = float(weights @ predictions)
    between = float(weights @ (predictions - mean) ** 2)
    within = float(weights @ residuals)
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
