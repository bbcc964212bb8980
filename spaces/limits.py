"""Upper bounds on what one space file may make hpsearch read, build or print.

A space file is input from anyone (a shell, a request to ``hpsearch serve``): a YAML alias bomb, a
file of gigabytes or a grid of 10^12 points must be refused with one sentence, not explored. Each
bound has a documented default and an environment variable that raises (or lowers) it, read when the
bound is checked. ``hpsearch.limits`` holds the bounds of the run-time layer on the same class.
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import SpaceError

#: The longest a quoted user value gets in a message: enough to recognise it, never the whole input.
QUOTED_CHARS = 80

_repr = reprlib.Repr()
_repr.maxstring = QUOTED_CHARS
_repr.maxother = QUOTED_CHARS
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = _repr.maxfrozenset = 6
_repr.maxlevel = 3


def quoted(value: Any) -> str:
    """``repr(value)`` cut to about :data:`QUOTED_CHARS` characters, for an error message.

    reprlib stops at the cut without building the whole repr first, so even a value with millions of
    elements (or one nested through YAML aliases) costs only what is printed.

    Args:
        value: whatever the user gave.

    Returns:
        A one-line repr of at most about 2 * QUOTED_CHARS characters (``...`` marks a cut).
    """
    try:
        text = _repr.repr(value)
    except Exception:  # a user object whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    if len(text) > 2 * QUOTED_CHARS:
        text = text[: 2 * QUOTED_CHARS - 3] + "..."
    return text


@dataclass(frozen=True)
class Limit:
    """One bound: what it limits, its default, and the environment variable that overrides it."""

    what: str
    default: int
    variable: str
    #: What ``check`` raises: a space's own error here, ``UsageError`` in ``hpsearch.limits``.
    error: ClassVar[type[Exception]] = SpaceError

    def value(self) -> int:
        """The limit in force: the environment variable when it holds a positive integer, else the default.

        Returns:
            The bound.

        Raises:
            ``error``: the variable is set but is not a positive integer.
        """
        raw = os.environ.get(self.variable)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            value = int(raw.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise self.error(f"{self.variable} must be a positive integer, but got {quoted(raw)}")
        return value

    def message(self, value: int, given_as: str) -> str | None:
        """The sentence refusing ``value``, or None when it is within the limit.

        Args:
            value: the number asked for.
            given_as: how the user gave it (``--workers``, ``the space's grid``), named in the sentence.

        Returns:
            None, or one sentence naming the limit and the variable that raises it.
        """
        bound = self.value()
        if value <= bound:
            return None
        return (f"{given_as} asks for {value} {self.what}, over the limit of {bound}; "
                f"set {self.variable} to raise it")

    def check(self, value: int, given_as: str) -> None:
        """Refuse ``value`` when it is over the limit.

        Args:
            value: the number asked for.
            given_as: how the user gave it (``--workers``, ``the space's grid``), named in the message.

        Raises:
            ``error``: ``value`` exceeds the limit; the message says the limit and how to raise it.
        """
        problem = self.message(value, given_as)
        if problem is not None:
            raise self.error(problem)


#: Candidates a grid may hold (the Optuna grid sampler and the first rung of a halving grid list every
#: one), and values one parameter may expand to wherever its values are listed (a stepped float is a
#: KerasTuner Choice of all its values).
GRID_CANDIDATES = Limit("grid candidates", 1_000_000, "HPSEARCH_MAX_GRID")
#: Bytes of a space file, checked before it is read: a real space is a few hundred bytes.
SPACE_FILE_BYTES = Limit("bytes", 1_048_576, "HPSEARCH_MAX_SPACE_BYTES")
#: YAML aliases (``*name``) in one space file: a space needs few, and a bomb needs many per level.
YAML_ALIASES = Limit("aliases", 100, "HPSEARCH_MAX_YAML_ALIASES")
#: Nodes of a space document once every alias is expanded: the size anything printing or storing the
#: space would build. A real space has a few hundred.
SPACE_NODES = Limit("nodes once its aliases are expanded", 100_000, "HPSEARCH_MAX_SPACE_NODES")
#: Nesting depth of a space document: PyYAML and the json module both recurse once per level.
SPACE_DEPTH = Limit("levels of nesting", 64, "HPSEARCH_MAX_SPACE_DEPTH")


def quoted_list(values: Any, limit: int = 10) -> str:
    """The first ``limit`` of ``values``, each :func:`quoted`, then how many there are in all.

    Args:
        values: a sequence of user values (column names, classes).
        limit: how many to show.

    Returns:
        ``'a', 'b', ... (12 in all)``: bounded however many values there are.
    """
    total = len(values)
    shown = ", ".join(quoted(values[index]) for index in range(min(total, limit)))
    return shown if total <= limit else f"{shown}, ... ({total} in all)"
