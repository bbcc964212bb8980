"""Every seed hpsearch uses, derived from the study's ``--seed`` in this one module.

A study's trials are a function of its seed (``hpsearch.training.reproducibility``): the data split, the
samplers' proposals, each trial's initial weights, dropout masks and batch order, and a retrain's runs
all come from it. Each derivation below is the only one of its kind, so a reader sees in one place what
a seed decides, and a change to one shows up in ``tests/test_seeds.py`` (which pins their values).

- :func:`study_seed`: the seed a study was created with (0 when not given, or recorded before seeds).
- :func:`data_split_seed`: train/validation/test split of the data (``hpsearch.data``).
- :func:`candidate_seed`: scikit-learn's ``ParameterSampler``, successive halving's row subsamples and
  SciKeras' ``random_state``.
- :func:`sampler_seed` and :func:`delegate_sampler_seed`: Optuna's samplers, reseeded before every
  proposal (distinct per proposal, so K workers started together draw K configurations).
- :func:`keras_tuner_seed`: the KerasTuner oracle.
- :func:`training_seed`: one configuration's training (weights, dropout, batch order), the same whichever
  worker runs it and whenever, so a retry repeats the interrupted trial exactly.
- :func:`epoch_order_seed`: the stateless shuffle that orders each epoch's batches.
- :func:`retrain_seeds`: ``hpsearch retrain --seeds K --seed S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpsearch.storage import config_key

#: Seeds are 32-bit unsigned for NumPy's and Optuna's samplers (``hpsearch.limits.SEED_MAX``).
_SAMPLER_RANGE = 2**32
#: TensorFlow's stateless ops and ``keras.utils.set_random_seed`` take a non-negative int32-sized seed.
_TRAINING_RANGE = 2**31


def study_seed(recorded: int | None) -> int:
    """The study's seed from its recorded value.

    Args:
        recorded: ``StudySettings.seed`` or a stored ``seed`` (None: a study recorded without one).

    Returns:
        The seed, 0 when none was recorded.
    """
    return 0 if recorded is None else int(recorded)


def data_split_seed(seed: int) -> int:
    """The seed of the train/validation/test split: the study's seed itself (a data reference records
    it, so a resume reloads the same split).

    Args:
        seed: the study's seed.

    Returns:
        The split's seed.
    """
    return int(seed)


def candidate_seed(seed: int) -> int:
    """The ``random_state`` of scikit-learn's ``ParameterSampler``, of successive halving's row subsamples
    and of SciKeras' estimators: the study's seed itself, as ``RandomizedSearchCV(random_state=--seed)``
    uses it, so the candidates are scikit-learn's own.

    Args:
        seed: the study's seed.

    Returns:
        The ``random_state``.
    """
    return int(seed)


def sampler_seed(seed: int, number: int) -> int:
    """The seed an Optuna sampler is reseeded with before proposal ``number`` of a study seeded ``seed``:
    distinct per proposal.

    Args:
        seed: the study's seed (taken modulo 2**32).
        number: the proposal's index (the Optuna trial number, less the abandoned ones).

    Returns:
        A 32-bit unsigned seed.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed % _SAMPLER_RANGE, number]).generate_state(1)[0])


def delegate_sampler_seed(seed: int) -> int:
    """The seed of the sampler a sampler delegates to (TPE's and CMA-ES's random start-up sampler), from
    the seed of the one delegating: another stream than its own.

    Args:
        seed: the delegating sampler's seed.

    Returns:
        A 32-bit unsigned seed.
    """
    return (seed + 1) % _SAMPLER_RANGE


def keras_tuner_seed(seed: int) -> int:
    """The KerasTuner oracle's seed: KerasTuner takes 0 as "no seed", so ``--seed 0`` must not reach it.

    Args:
        seed: the study's seed.

    Returns:
        ``seed + 1``.
    """
    return seed + 1


def training_seed(seed: int, params: Mapping[str, Any]) -> int:
    """The seed a configuration trains with in a study seeded ``seed`` (``Attempt.seed``).

    Drawn from the study's seed and the configuration alone, so the configuration trains the same way
    whichever worker runs it and whenever it comes.

    Args:
        seed: the study's seed.
        params: the trial's parameters.

    Returns:
        A seed in 0..2**31-1.
    """
    return int(config_key({"seed": seed, "params": dict(params)})[:8], 16) % _TRAINING_RANGE


def epoch_order_seed(seed: int) -> int:
    """The first half of the stateless shuffle's seed pair ``(this, epoch)`` that orders an epoch's
    batches (``hpsearch.training.fit.epoch_batches``): TensorFlow takes it as an int64 tensor.

    Args:
        seed: the trial's training seed.

    Returns:
        ``seed`` modulo 2**31.
    """
    return seed % _TRAINING_RANGE


def retrain_seeds(first: int, count: int) -> list[int]:
    """The seeds of ``hpsearch retrain --seed first --seeds count``: ``first`` and the ones after it.

    Args:
        first: ``--seed``.
        count: ``--seeds`` (at least 1).

    Returns:
        ``[first, first + 1, ..., first + count - 1]``.
    """
    return [first + i for i in range(count)]
