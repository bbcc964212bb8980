"""Hyperband's plan for the KerasTuner engine: its settings, its brackets and rounds, and what they cost.

Plain arithmetic without importing KerasTuner, so ``--dry-run`` and ``describe`` stay fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpsearch.spaces import DEFAULTS, SearchSpace

from ...errors import UsageError
from ...settings import StudySettings

DEFAULT_FACTOR = 3


@dataclass(frozen=True)
class HyperbandRound:
    """One round of one bracket: ``configs`` models trained from ``initial_epoch`` to ``epochs``."""

    bracket: int
    round: int
    configs: int
    epochs: int
    initial_epoch: int

    @property
    def trained(self) -> int:
        """Epochs each model trains in this round (a continued model resumes at ``initial_epoch``)."""
        return self.epochs - self.initial_epoch


def space_epochs(space: SearchSpace) -> int:
    """The epochs a configuration of the space trains: Hyperband's default ``max_epochs``."""
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))


def hyperband_settings(space: SearchSpace, settings: StudySettings) -> tuple[int, int]:
    """Hyperband's ``(max_epochs, factor)`` for a study: the options given, else their defaults.

    Args:
        space: the study's search space (its fixed epochs are the default ``max_epochs``).
        settings: the study's settings, with ``max_epochs`` and ``factor`` (None when not given).

    Raises:
        UsageError: ``max_epochs`` below 1 or ``factor`` below 2.
    """
    max_epochs = settings.max_epochs
    max_epochs = space_epochs(space) if max_epochs is None else int(max_epochs)
    factor = settings.factor
    factor = DEFAULT_FACTOR if factor is None else int(factor)
    if max_epochs < 1:
        raise UsageError(f"--max-epochs must be at least 1, but got {max_epochs}")
    if factor < 2:
        raise UsageError(f"--factor must be at least 2, but got {factor}")
    return max_epochs, factor


def hyperband_plan(max_epochs: int, factor: int) -> list[list[HyperbandRound]]:
    """KerasTuner's Hyperband brackets for one iteration, most exploratory bracket first.

    The same arithmetic as ``keras_tuner.oracles.HyperbandOracle`` (``_get_num_brackets``,
    ``_get_size``, ``_get_epochs``), without importing KerasTuner, so ``--dry-run`` stays fast.
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    last_round_size = math.ceil(1 + math.log(max_epochs, factor))

    def size(bracket: int, round_num: int) -> int:
        return math.ceil(last_round_size / (bracket + 1) * factor ** (bracket - round_num))

    def epochs_at(bracket: int, round_num: int) -> int:
        return math.ceil(max_epochs / factor ** (bracket - round_num))

    return [
        [
            HyperbandRound(
                bracket=bracket,
                round=round_num,
                configs=size(bracket, round_num),
                epochs=epochs_at(bracket, round_num),
                initial_epoch=epochs_at(bracket, round_num - 1) if round_num else 0,
            )
            for round_num in range(bracket + 1)
        ]
        for bracket in range(brackets - 1, -1, -1)
    ]


def plan_trials(plan: list[list[HyperbandRound]]) -> int:
    """The trials one iteration of ``plan`` runs: one per configuration per round."""
    return sum(round_.configs for bracket in plan for round_ in bracket)


def plan_epochs(plan: list[list[HyperbandRound]]) -> int:
    """The epochs one iteration of ``plan`` trains in all (a continued round counts only its own)."""
    return sum(round_.configs * round_.trained for bracket in plan for round_ in bracket)


def describe_plan(plan: list[list[HyperbandRound]]) -> list[str]:
    """``describe``'s lines for ``plan``: its totals, then one line per round."""
    lines = [f"hyperband plan: {len(plan)} brackets, {plan_trials(plan)} trials, "
             f"{plan_epochs(plan)} epochs in all"]
    for bracket in plan:
        for round_ in bracket:
            continued = f", continuing epoch {round_.initial_epoch}" if round_.initial_epoch else ""
            lines.append(
                f"  bracket {round_.bracket} round {round_.round}: {round_.configs} configs x "
                f"{round_.trained} epochs (to epoch {round_.epochs}{continued})"
            )
    return lines
