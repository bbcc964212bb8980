"""The three parameter types of a search space: ``int``, ``float`` and ``categorical``.

Each checks itself on construction (raising :class:`SpaceError` naming the parameter) and knows its
finite values for grid search (:meth:`grid_values`) and how to bring a value proposed by any engine
back to its canonical form (:meth:`normalise`), which is what makes one point resolve to one config
whichever engine proposed it.

A numeric parameter may carry ``grid`` next to ``low``/``high``: samplers (Optuna, KerasTuner, random
search) draw from the range, grid engines use the grid. With ``grid`` alone (``grid_only``) the
parameter is that list of values for every engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import SpaceError
from .hyperparameters import finite_number, is_number, plain
from .limits import GRID_CANDIDATES, quoted

# Float grids are built as low + k * step; 12 significant digits drop the binary noise (0.30000000000000004)
# while keeping any step a person would write.
_SIGNIFICANT = 12


def clean_float(value: float) -> float:
    return float(f"{value:.{_SIGNIFICANT}g}")


class _NumericParam:
    """Shared checks of IntParam and FloatParam (a mixin: both are frozen dataclasses)."""

    name: str
    low: Any
    high: Any
    log: bool
    step: Any
    grid: tuple[Any, ...] | None
    grid_only: bool
    _type_name = "number"

    def _number_ok(self, value: Any) -> bool:
        raise NotImplementedError

    def _convert(self, value: Any) -> Any:
        raise NotImplementedError

    def _fail(self, detail: str) -> SpaceError:
        return SpaceError(detail, param=self.name)

    def _check(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"a parameter name must be a non-empty string, but got {quoted(self.name)}")
        if not isinstance(self.log, bool):
            raise self._fail(f"`log` must be true or false, but got {quoted(self.log)}")
        if self.grid is not None:
            grid = self.grid
            if isinstance(grid, str) or not isinstance(grid, list | tuple) or not grid:
                raise self._fail(f"`grid` must be a non-empty list of {self._type_name}s, but got "
                                 f"{quoted(grid)}")
            for value in grid:
                if not self._number_ok(value):
                    raise self._fail(f"`grid` values must be {self._type_name}s, but got {quoted(value)}")
            grid = tuple(self._convert(value) for value in grid)
            if len(set(grid)) != len(grid):
                raise self._fail(f"`grid` values must be unique, but got {quoted(list(grid))}")
            set_(self, "grid", grid)
        if self.low is None and self.high is None:
            if self.grid is None:
                raise self._fail("give `low` and `high` (or `grid: [...]`)")
            set_(self, "low", min(self.grid))
            set_(self, "high", max(self.grid))
            set_(self, "grid_only", True)
        elif self.low is None or self.high is None:
            missing = "low" if self.low is None else "high"
            raise self._fail(f"`{missing}` is missing; give both `low` and `high` (or only `grid: [...]`)")
        for field_name in ("low", "high"):
            value = getattr(self, field_name)
            if not self._number_ok(value):
                raise self._fail(f"`{field_name}` must be {self._type_name_a()}, but got {quoted(value)}")
            set_(self, field_name, self._convert(value))
        if self.grid_only:
            if self.grid is None or (self.low, self.high) != (min(self.grid), max(self.grid)):
                raise self._fail("a grid-only parameter takes `low` and `high` from its `grid`")
        elif not self.low < self.high:
            raise self._fail(f"`low` must be < `high`, but got low={quoted(self.low)}, "
                             f"high={quoted(self.high)}")
        if self.log and self.low <= 0:
            raise self._fail(f"`low` must be > 0 with `log: true`, but got low={quoted(self.low)}")
        if self.step is not None:
            self._check_step()
        if self.grid is not None and not self.grid_only:
            outside = [value for value in self.grid if not self.low <= value <= self.high]
            if outside:
                raise self._fail(
                    f"`grid` values must lie in [low, high] = [{quoted(self.low)}, {quoted(self.high)}], "
                    f"but got {quoted(outside)}"
                )

    def _type_name_a(self) -> str:
        return "an integer" if self._type_name == "integer" else "a number"

    def _check_step(self) -> None:
        if not self._number_ok(self.step) or self.step <= 0:
            raise self._fail(f"`step` must be {self._type_name_a()} > 0, but got {quoted(self.step)}")
        object.__setattr__(self, "step", self._convert(self.step))
        # Optuna refuses log together with step; an int step of 1 is what log ints mean anyway.
        if self.log and not (isinstance(self, IntParam) and self.step == 1):
            raise self._fail(
                f"`log: true` cannot be combined with `step` (got step={quoted(self.step)}); "
                "drop `step`, or give the values as `grid: [...]`"
            )
        if self.grid_only:
            return
        try:
            count = (self.high - self.low) / self.step
        except OverflowError:  # ints past a float's range: (10**400 - 0) / 1
            count = math.inf
        if not math.isfinite(count):
            # 1e308 - -1e308 overflows; no grid or Choice could hold such a range anyway.
            raise self._fail(f"`step` is too small for the range: (high - low) / step is {count}")
        # Engines disagree on a range that step does not divide (Optuna trims `high`, KerasTuner does
        # not), so refuse it rather than let the same space mean two things.
        if not math.isclose(count, round(count), rel_tol=0, abs_tol=1e-9):
            raise self._fail(
                f"`high - low` must be a multiple of `step`, but got low={quoted(self.low)}, "
                f"high={quoted(self.high)}, step={quoted(self.step)}"
            )

    @property
    def finite(self) -> bool:
        return True

    def value_count(self) -> int | None:
        """How many values :meth:`grid_values` lists, counted without listing them (None: continuous)."""
        if self.grid is not None:
            return len(self.grid)
        if isinstance(self, FloatParam) and self.step is None:
            return None
        assert self.low is not None and self.high is not None
        if isinstance(self, IntParam):
            return (self.high - self.low) // (self.step or 1) + 1
        return round((self.high - self.low) / self.step) + 1

    def _check_listable(self) -> None:
        """Refuse to list more values than any grid may hold (an int range of 10**12 would fill memory)."""
        count, bound = self.value_count(), GRID_CANDIDATES.value()
        if count is not None and count > bound:
            raise self._fail(f"lists {count} values, over the limit of {bound}; give a larger `step`, or set "
                             f"{GRID_CANDIDATES.variable} to raise it")

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "int" if isinstance(self, IntParam) else "float"}
        if not self.grid_only:
            spec["low"] = self.low
            spec["high"] = self.high
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        if self.grid is not None:
            spec["grid"] = list(self.grid)
        return spec


@dataclass(frozen=True)
class IntParam(_NumericParam):
    """An integer range ``[low, high]`` (both included), optionally log-scaled, stepped or gridded."""

    name: str
    low: int | None = None
    high: int | None = None
    log: bool = False
    step: int | None = None
    grid: tuple[int, ...] | None = None
    grid_only: bool = False
    _type_name = "integer"

    def __post_init__(self) -> None:
        self._check()

    def _number_ok(self, value: Any) -> bool:
        value = plain(value)
        return isinstance(value, int) and not isinstance(value, bool)

    def _convert(self, value: Any) -> int:
        return int(plain(value))

    def grid_values(self) -> list[int]:
        """Every value a grid search tries, in order."""
        if self.grid is not None:
            return list(self.grid)
        assert self.low is not None and self.high is not None
        self._check_listable()
        return list(range(self.low, self.high + 1, self.step or 1))

    def normalise(self, value: Any) -> int:
        value = plain(value)
        if not is_number(value) or float(value) != round(float(value)):
            raise self._fail(f"engine proposed {quoted(value)}, which is not an integer")
        return int(round(value))


@dataclass(frozen=True)
class FloatParam(_NumericParam):
    """A real range ``[low, high]``, optionally log-scaled; grid-able only with ``step`` or ``grid``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    grid: tuple[float, ...] | None = None
    grid_only: bool = False

    def __post_init__(self) -> None:
        self._check()

    def _number_ok(self, value: Any) -> bool:
        value = plain(value)
        return is_number(value) and finite_number(value)

    def _convert(self, value: Any) -> float:
        return float(plain(value))

    @property
    def finite(self) -> bool:
        return self.grid is not None or self.step is not None

    def grid_values(self) -> list[float]:
        """Every value a grid search tries, in order; refuses a continuous range."""
        if self.grid is not None:
            return list(self.grid)
        if self.step is None:
            raise self._fail(
                "a float range has no finite grid; give `step` (for example step: 0.1) or `grid: [...]`"
            )
        assert self.low is not None and self.high is not None
        self._check_listable()
        count = round((self.high - self.low) / self.step)
        return [clean_float(self.low + index * self.step) for index in range(count + 1)]

    def normalise(self, value: Any) -> float:
        value = plain(value)
        if not is_number(value):
            raise self._fail(f"engine proposed {quoted(value)}, which is not a number")
        value = float(value)
        if self.grid_only and self.grid is not None:
            nearest = min(self.grid, key=lambda candidate: abs(candidate - value))
            return nearest if math.isclose(nearest, value, rel_tol=1e-9, abs_tol=1e-12) else value
        if self.step is not None and self.low is not None:
            # Engines compute low + k * step each in their own way; snapping gives all of them one float.
            return clean_float(self.low + round((value - self.low) / self.step) * self.step)
        return value


_SCALARS = (str, int, float, bool)


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


@dataclass(frozen=True)
class CategoricalParam:
    """An unordered list of scalar choices, all strings, all numbers or all booleans."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"a parameter name must be a non-empty string, but got {quoted(self.name)}")
        choices = self.choices
        if isinstance(choices, str) or not isinstance(choices, list | tuple) or not choices:
            raise SpaceError(f"`choices` must be a non-empty list, but got {quoted(choices)}",
                             param=self.name)
        choices = tuple(plain(choice) for choice in choices)
        for choice in choices:
            numeric = isinstance(choice, int | float) and not isinstance(choice, bool)
            if not isinstance(choice, _SCALARS) or (numeric and not finite_number(choice)):
                raise SpaceError(
                    f"`choices` must be strings, numbers or booleans, but got {quoted(choice)}",
                    param=self.name,
                )
        kinds = {_scalar_kind(choice) for choice in choices}
        if len(kinds) > 1:
            raise SpaceError(
                f"`choices` must all be strings, all numbers or all booleans, but got "
                f"{quoted(list(choices))}",
                param=self.name,
            )
        keys = [(_scalar_kind(choice), choice) for choice in choices]
        if len(set(keys)) != len(keys):
            raise SpaceError(f"`choices` must be unique, but got {quoted(list(choices))}", param=self.name)
        object.__setattr__(self, "choices", choices)

    @property
    def finite(self) -> bool:
        return True

    def grid_values(self) -> list[Any]:
        return list(self.choices)

    def value_count(self) -> int:
        """How many values :meth:`grid_values` lists."""
        return len(self.choices)

    def normalise(self, value: Any) -> Any:
        value = plain(value)
        for choice in self.choices:
            if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                return choice
        raise SpaceError(f"engine proposed {quoted(value)}, which is not among the choices "
                         f"{quoted(list(self.choices))}",
                         param=self.name)

    def to_spec(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


Param = IntParam | FloatParam | CategoricalParam
