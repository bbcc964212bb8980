"""``--population auto|off|K``: how many proposals a search asks at once to train as populations.

Read by the engines that train populations (:mod:`hpsearch.training.population`); kept apart from the
trainer so that the command line parses it without importing NumPy or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

#: ``--population auto`` for a sampler that learns from results (TPE, CMA-ES): proposals asked at once.
#: Large enough that the members of one depth and batch size share their per-step cost, small enough that
#: the sampler still learns between populations.
AUTO_POPULATION = 16
#: ``--population auto`` for a sampler that does not learn from results (random, grid): every proposal is
#: known in advance, so populations are as large as the budget allows, up to this.
AUTO_POPULATION_UNINFORMED = 256
#: Samplers whose proposals do not depend on earlier results.
UNINFORMED_ALGORITHMS = ("random", "grid")
#: Most members one population may ask for (the arrays of a population grow with it).
MAX_POPULATION = 1024


def cli_population(text: str) -> int | str:
    """The command line's ``--population`` value: a count as an int, a word as it was typed (checked
    later, with the other settings, so a bad value gets the one-sentence usage error)."""
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else stripped


def population_size(value: Any, algorithm: str | None = None) -> int:
    """The most proposals trained as populations at once: 0 when off.

    Args:
        value: the recorded ``population`` setting: None or ``off`` (off), ``auto``, or a count >= 1
            (1: every trial alone, as off).
        algorithm: the engine's algorithm, which ``auto`` reads (``UNINFORMED_ALGORITHMS``).

    Returns:
        0 for off, else the count.

    Raises:
        UsageError: any other value.
    """
    if value is None or value == "off":
        return 0
    if value == "auto":
        return AUTO_POPULATION_UNINFORMED if algorithm in UNINFORMED_ALGORITHMS else AUTO_POPULATION
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_POPULATION:
        raise UsageError(f"--population must be auto, off or a whole number from 1 to {MAX_POPULATION}, "
                         f"but got {value!r}")
    return 0 if value == 1 else value
