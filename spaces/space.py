"""The search space: what a study tunes, what it fixes, and what it optimises.

A space is read from a YAML or JSON file (or a bundled preset) and validated completely when loaded,
so a typo fails in a second, before any training, with one sentence naming the file, the parameter
and what must hold.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import SpaceError
from .functions import check_reference, function_reference
from .hyperparameters import DEFAULTS, KNOBS, Knob, check_value, finite_number, in_range, is_number, plain
from .limits import SPACE_FILE_BYTES, quoted
from .objectives import direction_of, objective_problem
from .params import CategoricalParam, FloatParam, IntParam, Param
from .safe_load import parse_json, parse_yaml

TASKS = ("auto", "binary", "multiclass", "regression")
TOP_LEVEL_KEYS = ("task", "objective", "params", "fixed", "model", "train")
#: Keys a resolved config uses for the space's own function reference; no parameter may take these names.
MODEL_KEY = "model"
TRAIN_KEY = "train"
RESERVED_NAMES = (MODEL_KEY, TRAIN_KEY)
_OWN_PARAMS_HINT = "; own parameters need a `model:` or `train:` function"
DEFAULT_OBJECTIVE = "val_loss"
_SPACE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_NUMERIC_KEYS = {"type", "low", "high", "log", "step", "grid"}
_CATEGORICAL_KEYS = {"type", "choices"}
# PyYAML reads 1e-4 (no dot) as a string; numbers are what such a string always means in a space file.
_NUMBER_TEXT = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_NUMBER_TEXT_CHARS = 64


def _unknown(name: str, known: Iterable[str], what: str, tail: str = "") -> SpaceError:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {quoted(close[0])}?)" if close else ""
    return SpaceError(f"unknown {what} {quoted(name)}{hint}; known {what}s: {', '.join(known)}{tail}")


def _unknown_param(name: str) -> SpaceError:
    return _unknown(name, KNOBS, "parameter", _OWN_PARAMS_HINT)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    ``params`` keeps the order of the file. ``source`` names where the space came from (a path, or
    ``preset:NAME``) for error messages; it takes no part in equality, so the same space read from two
    places compares equal. ``to_dict()`` is the stable, JSON-able identity callers store and compare.

    ``model`` names the user's model function and ``train`` the user's training function (at most one),
    as ``package.module:function`` references; a Python caller may pass the function itself, which is
    turned into its reference (:func:`hpsearch.spaces.functions.function_reference`). With either set,
    ``params`` and ``fixed`` may hold parameters the bundled builder does not know.
    """

    task: str = "auto"
    objective: str = DEFAULT_OBJECTIVE
    params: dict[str, Param] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="<space>", compare=False)
    model: str | None = None
    train: str | None = None

    def __post_init__(self) -> None:
        try:
            for key in RESERVED_NAMES:
                value = getattr(self, key)
                if value is not None and not isinstance(value, str) and callable(value):
                    object.__setattr__(self, key, function_reference(value))
            params, fixed = _validate(self)
        except SpaceError as error:
            raise error.with_source(self.source) from None
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "fixed", fixed)

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return direction_of(self.objective)

    @property
    def tuned_names(self) -> list[str]:
        return list(self.params)

    @property
    def function(self) -> str | None:
        """The user's model or training function reference, or None for the bundled builder."""
        return self.model or self.train

    def grid_size(self) -> int:
        """Number of grid-search candidates; raises :class:`SpaceError` naming a continuous parameter."""
        try:
            total = 1
            for param in self.params.values():
                count = param.value_count()
                if count is None:
                    param.grid_values()  # raises the SpaceError naming the continuous parameter
                    continue
                # Counted, never listed: an int range of 10**12 values is one multiplication here.
                total *= count
            return total
        except SpaceError as error:
            raise error.with_source(self.source) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; ``space_from_dict(space.to_dict(), space.source) == space``."""
        data: dict[str, Any] = {
            "task": self.task,
            "objective": self.objective,
            "params": {name: param.to_spec() for name, param in self.params.items()},
            "fixed": dict(self.fixed),
        }
        # Only when set: the stored spaces of studies without a function stay exactly as they were.
        for key in RESERVED_NAMES:
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def check_objective(space: SearchSpace, kind: str, n_classes: int | None = None) -> None:
    """Refuse an objective the model built for ``kind`` (with ``n_classes``) would never report.

    Loading a space checks its objective against its own ``task`` (any task for ``auto``); this is the
    second check, once the data has told the task and the number of classes.

    Raises:
        SpaceError: naming ``space.source`` and why the objective cannot be optimised.
    """
    problem = objective_problem(space.objective, kind, n_classes)
    if problem:
        raise SpaceError(problem, source=space.source)


def _validate(space: SearchSpace) -> tuple[dict[str, Param], dict[str, Any]]:
    if space.task not in TASKS:
        raise SpaceError(f"`task` must be one of {', '.join(TASKS)}, but got {quoted(space.task)}")
    if not isinstance(space.objective, str) or not space.objective:
        raise SpaceError(f"`objective` must be a metric name, but got {quoted(space.objective)}")
    problem = objective_problem(space.objective, None if space.task == "auto" else space.task)
    if problem:
        raise SpaceError(f"`objective` {problem.removeprefix('objective ')}")
    for key in RESERVED_NAMES:
        if getattr(space, key) is not None:
            check_reference(getattr(space, key), key)
    if space.model is not None and space.train is not None:
        raise SpaceError("names both a `model:` and a `train:` function; keep only one (a training function "
                         "builds its own model)")
    own = space.function is not None
    params: dict[str, Param] = {}
    for name, param in space.params.items():
        _check_name(name, own)
        if not isinstance(param, IntParam | FloatParam | CategoricalParam):
            raise SpaceError(f"must be an IntParam, FloatParam or CategoricalParam, but got {quoted(param)}",
                             param=name)
        if param.name != name:
            raise SpaceError(f"is declared under a different name ({quoted(param.name)})", param=name)
        # A parameter of the user's own function has no domain of ours: its type and bounds are all.
        params[name] = _check_domain(KNOBS[name], param) if name in KNOBS else param
    fixed: dict[str, Any] = {}
    for name, value in space.fixed.items():
        _check_name(name, own)
        if name in params:
            raise SpaceError("is both tuned (under `params`) and fixed (under `fixed`); keep only one",
                             param=name)
        try:
            fixed[name] = check_value(name, value) if name in KNOBS else _own_fixed_value(value)
        except SpaceError as error:
            raise SpaceError(error.detail, param=name, label="fixed value") from None
    return params, fixed


def _check_name(name: Any, own: bool) -> None:
    """Refuse a parameter name the space cannot use (``own``: the space names the user's function)."""
    if not isinstance(name, str) or not name:
        raise SpaceError(f"parameter names must be non-empty strings, but got {quoted(name)}")
    if name in RESERVED_NAMES:
        raise SpaceError(f"`{name}` names the space's own function (a top-level key), not a parameter; "
                         "rename the parameter", param=name)
    if name not in KNOBS and not own:
        raise _unknown_param(name)


def _own_fixed_value(value: Any) -> Any:
    """A fixed value of the user's own parameter: any JSON scalar (finite numbers only)."""
    value = plain(value)
    if value is None or isinstance(value, str | bool):
        return value
    if is_number(value) and finite_number(value):
        return value
    raise SpaceError(f"must be a string, a finite number, true, false or null, but got {quoted(value)}")


def _check_domain(knob: Knob, param: Param) -> Param:
    """Check a parameter against what the builder accepts for it; return it with choices normalised."""
    if isinstance(param, CategoricalParam):
        # Choices become the knob's own type (dropout [0, 0.1] -> [0.0, 0.1]) so engines that insist on
        # one value type (KerasTuner's Choice) and stored configs agree.
        choices = tuple(check_value(knob.name, choice) for choice in param.choices)
        return CategoricalParam(param.name, choices)
    wanted = {"int": IntParam, "float": FloatParam}.get(knob.kind)
    if wanted is None:
        example = json.dumps(knob.default) if knob.kind == "bool" else knob.default
        raise SpaceError(f"takes only `type: categorical` (values must be {knob.domain()}, "
                         f"for example {example})", param=knob.name)
    if not isinstance(param, wanted):
        raise SpaceError(f"must be `type: {knob.kind}` or `type: categorical`, not "
                         f"`type: {'int' if isinstance(param, IntParam) else 'float'}`", param=knob.name)
    for field_name in ("low", "high"):
        value = getattr(param, field_name)
        if not in_range(knob, value):
            raise SpaceError(f"`{field_name}` must keep the parameter within its domain ({knob.domain()}), "
                             f"but got {field_name}={quoted(value)}", param=knob.name)
    for value in param.grid or ():
        if not in_range(knob, value):
            raise SpaceError(f"`grid` values must be {knob.domain()}, but got "
                             f"{quoted(value)}", param=knob.name)
    return param


def _number_from_text(value: Any) -> Any:
    # Only short text: the pattern backtracks polynomially on a long run of digits, and no number a
    # person writes is longer.
    if isinstance(value, str) and len(value) <= _NUMBER_TEXT_CHARS and _NUMBER_TEXT.match(value):
        if re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)  # exact: float() would round (and overflow past 1e308)
        return float(value)  # 1e999 is inf, refused later as not a finite number
    return value


def _param_from_spec(name: Any, spec: Any, own: bool = False) -> Param:
    _check_name(name, own)
    if not isinstance(spec, Mapping):
        raise SpaceError(f"must be a mapping with `type` (int, float or categorical), but got {quoted(spec)}",
                         param=name)
    kind = spec.get("type")
    if kind not in ("int", "float", "categorical"):
        raise SpaceError(f"`type` must be one of int, float, categorical, but got {quoted(kind)}", param=name)
    allowed = _CATEGORICAL_KEYS if kind == "categorical" else _NUMERIC_KEYS
    for key in spec:
        if key not in allowed:
            # Suggest only keys not already given: `type` is always there and would otherwise win.
            close = difflib.get_close_matches(str(key), sorted(allowed - set(spec)), n=1)
            hint = f" (did you mean {quoted(close[0])}?)" if close else ""
            raise SpaceError(f"unknown key {quoted(key)} for `type: {kind}`{hint}; allowed keys: "
                             f"{', '.join(sorted(allowed))}", param=name)
    if kind == "categorical":
        if "choices" not in spec:
            raise SpaceError("`type: categorical` needs `choices: [...]`", param=name)
        choices = spec["choices"]
        if isinstance(choices, list) and name in KNOBS and KNOBS[name].kind in ("int", "float"):
            choices = [_number_from_text(choice) for choice in choices]
        return CategoricalParam(name, tuple(choices) if isinstance(choices, list) else choices)
    values = {key: _number_from_text(spec[key]) for key in ("low", "high", "step") if key in spec}
    grid = spec.get("grid")
    if isinstance(grid, list):
        grid = tuple(_number_from_text(value) for value in grid)
    cls = IntParam if kind == "int" else FloatParam
    return cls(name, values.get("low"), values.get("high"), log=spec.get("log", False),
               step=values.get("step"), grid=grid)


def space_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> SearchSpace:
    """Build and validate a space from its plain form (a parsed YAML/JSON document or ``to_dict()``)."""
    try:
        if not isinstance(data, Mapping):
            raise SpaceError(f"a space must be a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, "
                             f"but got {type(data).__name__}")
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
                hint = f" (did you mean {quoted(close[0])}?)" if close else ""
                raise SpaceError(
                    f"unknown top-level key {quoted(key)}{hint}; allowed keys: {', '.join(TOP_LEVEL_KEYS)}"
                )
        raw_params = data.get("params") or {}
        raw_fixed = data.get("fixed") or {}
        for key, raw in (("params", raw_params), ("fixed", raw_fixed)):
            if not isinstance(raw, Mapping):
                raise SpaceError(f"`{key}` must be a mapping of parameter names, but got {quoted(raw)}")
        functions = {key: data.get(key) for key in RESERVED_NAMES}
        own = any(value is not None for value in functions.values())
        params = {name: _param_from_spec(name, spec, own) for name, spec in raw_params.items()}
        fixed = {}
        for name, value in raw_fixed.items():
            knob = KNOBS.get(name)
            fixed[name] = _number_from_text(value) if knob and knob.kind in ("int", "float") else value
        return SearchSpace(
            task=data.get("task", "auto"),
            objective=data.get("objective", DEFAULT_OBJECTIVE),
            params=params,
            fixed=fixed,
            source=source,
            **functions,
        )
    except SpaceError as error:
        raise error.with_source(source) from None


def _presets_dir() -> Any:
    return resources.files("hpsearch.spaces") / "presets"


def _preset_files() -> dict[str, Any]:
    found = {}
    for entry in _presets_dir().iterdir():
        suffix = Path(entry.name).suffix
        if suffix in _SPACE_SUFFIXES:
            found[Path(entry.name).stem] = entry
    return dict(sorted(found.items()))


def list_presets() -> list[str]:
    """Names of the bundled spaces, usable wherever a space file is asked for."""
    return list(_preset_files())


def _parse(text: str, fmt: str, source: str) -> Any:
    return parse_json(text, source) if fmt == "json" else parse_yaml(text, source)


def _read_space_file(path: Path, name: str) -> str:
    """The text of a space file, refused unread when it is larger than ``SPACE_FILE_BYTES``."""
    bound = SPACE_FILE_BYTES.value()
    size = path.stat().st_size
    if size > bound:
        raise SpaceError(f"space file {name!r} is {size} bytes, over the limit of {bound} for a space "
                         f"file; set {SPACE_FILE_BYTES.variable} to raise it")
    with path.open("rb") as handle:
        data = handle.read(bound + 1)  # a file that grew since stat() is still read only so far
    if len(data) > bound:
        raise SpaceError(f"space file {name!r} is over the limit of {bound} bytes for a space file; "
                         f"set {SPACE_FILE_BYTES.variable} to raise it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpaceError(
            f"space file {name!r} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8"
        ) from None


def load_space(path_or_preset: str | os.PathLike[str]) -> SearchSpace:
    """Load and validate a space file (``.yaml``, ``.yml``, ``.json``) or a bundled preset by name."""
    path = Path(path_or_preset)
    name = os.fspath(path_or_preset)
    if path.exists():
        if not path.is_file():
            raise SpaceError(f"space file {name!r} is not a file")
        fmt = _SPACE_SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise SpaceError(f"space file {name!r} must end in .yaml, .yml or .json")
        text = _read_space_file(path, name)
        source = name
    else:
        presets = _preset_files()
        if name not in presets:
            raise SpaceError(f"space file {name!r} does not exist and is not a bundled preset "
                             f"(presets: {', '.join(presets)})")
        entry = presets[name]
        fmt = _SPACE_SUFFIXES[Path(entry.name).suffix]
        text = entry.read_text(encoding="utf-8")
        source = f"preset:{name}"
    data = _parse(text, fmt, source)
    if data is None:
        raise SpaceError("is empty; a space needs at least `params` or `fixed`", source=source)
    return space_from_dict(data, source)


def resolve_config(space: SearchSpace, point: Mapping[str, Any]) -> dict[str, Any]:
    """The full config for one trial: defaults, then the space's fixed values, then ``point``.

    Values come back as plain Python types in each parameter's canonical form, so the same point gives
    an equal, JSON-able dict whichever engine proposed it.

    - Bundled builder: every builder knob (``DEFAULTS``), then ``fixed``, then ``point``.
    - A model function (``space.model``): the same, plus the space's own parameters, plus the function's
      reference under ``"model"``. The builder knobs still drive compile and fit (optimizer,
      learning_rate, clipping, batch_size, epochs, ...).
    - A training function (``space.train``): only ``fixed`` and ``point``, plus ``epochs`` (the resource:
      the default 20 unless fixed or tuned) and the function's reference under ``"train"``; no other
      builder default, as they mean nothing to the user's function.

    :func:`user_params` strips the reference key before a user's function sees
    the config.

    Args:
        space: the study's space.
        point: the tuned values one engine proposed (tuned name -> value).

    Returns:
        The config, a plain JSON-able dict.

    Raises:
        SpaceError: naming the space's source, for a name the space does not know or a value outside a
            builder knob's domain.
    """
    try:
        if space.train is not None:
            config: dict[str, Any] = {"epochs": DEFAULTS["epochs"], **space.fixed}
        else:
            config = {**DEFAULTS, **space.fixed}
        for name, value in point.items():
            if name not in KNOBS and name not in space.params:
                raise _unknown_param(name)
            param = space.params.get(name)
            config[name] = param.normalise(value) if param is not None else value
        resolved = {name: check_value(name, value) if name in KNOBS else plain(value)
                    for name, value in config.items()}
        for key in RESERVED_NAMES:
            if getattr(space, key) is not None:
                resolved[key] = getattr(space, key)
        return resolved
    except SpaceError as error:
        raise error.with_source(space.source) from None


def user_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a user's model or training function receives: ``config`` without the function's reference.

    Args:
        config: a config from :func:`resolve_config`.

    Returns:
        A new dict of every parameter (tuned, fixed and defaults) and nothing else.
    """
    return {name: value for name, value in config.items() if name not in RESERVED_NAMES}


def function_of(config: Mapping[str, Any]) -> tuple[str, str] | None:
    """``("model" | "train", reference)`` when ``config`` comes from a space naming a function, else None.

    Args:
        config: a config from :func:`resolve_config`.

    Returns:
        The key and the reference, or None for a config of the bundled builder.
    """
    for key in RESERVED_NAMES:
        reference = config.get(key)
        if isinstance(reference, str):
            return key, reference
    return None


def first_point(space: SearchSpace) -> dict[str, Any]:
    """A point of ``space``: each tuned parameter's first choice, first grid value or lower bound.

    What a base configuration holds for the tuned parameters (a scikit-learn base estimator, the trial
    build that checks a model function before a study starts); every engine's proposals replace it.

    Args:
        space: the space.

    Returns:
        Tuned name -> value.
    """
    point: dict[str, Any] = {}
    for name, param in space.params.items():
        if isinstance(param, CategoricalParam):
            point[name] = param.choices[0]
        else:
            point[name] = param.grid[0] if param.grid else param.low
    return point
