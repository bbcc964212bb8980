"""Spec strings: the small call-like strings a space file uses for structured choices.

``l2(0.01)``, ``max_norm(1.0)``, ``sgd(momentum=0.9, nesterov=true)``,
``variance_scaling(scale=2.0, mode=fan_avg, distribution=uniform)``, ``clipnorm(1.0)``.

They are strings, not nested mappings, so that a categorical parameter stays a flat list of scalars
that every engine (sklearn grids, KerasTuner ``Choice``, Optuna ``CategoricalDistribution``) can hold
and store as it is. Each string is parsed and checked when the space is loaded, and parsed again by the
model builder; both go through :func:`parse_spec`, so what loads is what builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .limits import quoted

#: The longest spec string read; the longest real one (variance_scaling with its three arguments) is
#: about 70 characters.
MAX_SPEC_CHARS = 200
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_KEYWORD = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


class SpecSyntaxError(ValueError):
    """A spec string that does not fit its accepted forms; the caller adds file and parameter."""


class _BadLiteral(ValueError):
    pass


@dataclass(frozen=True)
class Spec:
    """A parsed spec string: the function name and its arguments, defaults filled in."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Arg:
    """One argument a spec function takes: how to check it, and its value when omitted."""

    name: str
    check: Callable[[Any], str | None]  # returns what must hold when the value is wrong, else None
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Form:
    """One accepted function of a spec family (for example ``l2`` among the regularizers)."""

    name: str
    example: str
    args: tuple[Arg, ...] = ()
    keyword_only: bool = False


def _literal(text: str) -> Any:
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if _NUMBER.match(text):
        number = float(text)
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
    if _IDENT.match(text):
        return text
    raise _BadLiteral(f"cannot read argument value {quoted(text)}")


def parse_spec(text: str, forms: Mapping[str, Form], what: str) -> Spec:
    """Parse ``text`` against ``forms``; raise :class:`SpecSyntaxError` saying which forms are accepted."""
    accepted = ", ".join(form.example for form in forms.values())

    def fail(reason: str) -> SpecSyntaxError:
        return SpecSyntaxError(f"{reason}; accepted {what}: {accepted}")

    if not isinstance(text, str):
        raise fail(f"expected a string, but got {quoted(text)}")
    if len(text) > MAX_SPEC_CHARS:
        # _CALL backtracks quadratically on long runs of spaces: a 1 MB value would take an hour.
        raise fail(f"{quoted(text)} is {len(text)} characters long, more than any form takes "
                   f"({MAX_SPEC_CHARS})")
    match = _CALL.match(text)
    if not match:
        # The usual cause: an unquoted spec with a comma inside a YAML flow list [a, b(x=1, y=2)].
        unbalanced = text.count("(") != text.count(")")
        hint = " (quote it: inside [...] a comma splits the value)" if unbalanced else ""
        raise fail(f"{quoted(text)} is not of the form name or name(arguments){hint}")
    name, arg_text = match.group(1), match.group(2)
    form = forms.get(name)
    if form is None:
        raise fail(f"unknown {what[:-1] if what.endswith('s') else what} {quoted(name)}")
    if arg_text is not None and not form.args:
        raise fail(f"{quoted(name)} takes no arguments, but got {quoted(text)}")

    given: dict[str, Any] = {}
    pieces = [] if arg_text is None or not arg_text.strip() else arg_text.split(",")
    if arg_text is not None and not pieces:
        raise fail(f"{quoted(text)} has empty parentheses; write it as {form.example}")
    seen_keyword = False
    for position, piece in enumerate(pieces):
        keyword = _KEYWORD.match(piece)
        try:
            if keyword:
                seen_keyword = True
                key, value = keyword.group(1), _literal(keyword.group(2))
                if key not in {arg.name for arg in form.args}:
                    names = ", ".join(arg.name for arg in form.args)
                    raise fail(f"{quoted(name)} does not take argument {quoted(key)} (it takes: {names})")
            else:
                if form.keyword_only:
                    raise fail(f"{quoted(name)} takes keyword arguments only (name=value), not "
                               f"{quoted(piece.strip())}")
                if seen_keyword:
                    raise fail(f"positional argument after a keyword one in {quoted(text)}")
                if position >= len(form.args):
                    raise fail(f"{name!r} takes at most {len(form.args)} argument(s), but got {quoted(text)}")
                key, value = form.args[position].name, _literal(piece.strip())
        except _BadLiteral as error:
            raise fail(f"{error} in {quoted(text)}") from None
        if key in given:
            raise fail(f"argument {quoted(key)} given twice in {quoted(text)}")
        given[key] = value

    args: dict[str, Any] = {}
    for arg in form.args:
        if arg.name not in given:
            if arg.required:
                raise fail(f"{quoted(name)} needs argument {quoted(arg.name)}, as in {form.example}")
            if arg.default is not None:
                args[arg.name] = arg.default
            continue
        problem = arg.check(given[arg.name])
        if problem:
            raise fail(f"argument {arg.name!r} of {name!r} must be {problem}, but got "
                       f"{quoted(given[arg.name])}")
        args[arg.name] = given[arg.name]
    return Spec(name, args)


# Argument checks: each returns a description of what must hold, or None when the value is fine.

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a number > 0"


def non_negative(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "a number >= 0"


def unit_interval(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def open_unit_interval(value: Any) -> str | None:
    return None if _is_number(value) and 0 < value < 1 else "a number in (0, 1)"


def positive_int(value: Any) -> str | None:
    whole = isinstance(value, int) and not isinstance(value, bool)
    return None if whole and value >= 1 else "an integer >= 1"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(choices)

    return check


def forms(*items: Form) -> dict[str, Form]:
    return {item.name: item for item in items}


ACTIVATIONS = ("relu", "elu", "selu", "leaky_relu", "tanh", "gelu", "swish", "sigmoid", "softplus")
ACTIVATION_FORMS = forms(*(Form(name, name) for name in ACTIVATIONS))

INITIALIZER_FORMS = forms(
    *(Form(name, name) for name in
      ("he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "glorot_uniform", "glorot_normal")),
    Form(
        "variance_scaling",
        "variance_scaling(scale=2.0, mode=fan_avg, distribution=uniform)",
        (
            Arg("scale", positive, default=1.0),
            Arg("mode", one_of("fan_in", "fan_out", "fan_avg"), default="fan_in"),
            Arg("distribution", one_of("truncated_normal", "untruncated_normal", "uniform"),
                default="truncated_normal"),
        ),
    ),
)

# Magnitudes are required (no Keras default of 0.01 hiding in the builder): a space file states them.
REGULARIZER_FORMS = forms(
    Form("none", "none"),
    Form("l1", "l1(0.001)", (Arg("l1", non_negative, required=True),)),
    Form("l2", "l2(0.01)", (Arg("l2", non_negative, required=True),)),
    Form("l1_l2", "l1_l2(l1=0.01, l2=0.01)",
         (Arg("l1", non_negative, default=0.0), Arg("l2", non_negative, default=0.0))),
)

CONSTRAINT_FORMS = forms(
    Form("none", "none"),
    Form("max_norm", "max_norm(1.0)", (Arg("max_value", positive, required=True),)),
)

CLIPPING_FORMS = forms(
    Form("none", "none"),
    Form("clipnorm", "clipnorm(1.0)", (Arg("clipnorm", positive, required=True),)),
    Form("clipvalue", "clipvalue(1.0)", (Arg("clipvalue", positive, required=True),)),
)

# Learning-rate schedules, per epoch (see hpsearch.spaces.schedules): each gives the factor applied to the
# base
# learning_rate at an epoch. Defaults are stated here so the stored config says what ran.
# cosine's `epochs` (the epochs it takes to reach its floor) defaults to the config's own `epochs`.
LR_SCHEDULE_FORMS = forms(
    Form("none", "none"),
    Form("step", "step(drop=0.1, every=10)",
         (Arg("drop", open_unit_interval, default=0.1), Arg("every", positive_int, default=10))),
    Form("exponential", "exponential(rate=0.9)", (Arg("rate", open_unit_interval, required=True),)),
    Form("cosine", "cosine(epochs=20, alpha=0.0)",
         (Arg("epochs", positive_int), Arg("alpha", unit_interval, default=0.0))),
)

_CLIP_ARGS = (Arg("clipnorm", positive), Arg("clipvalue", positive), Arg("weight_decay", non_negative))
# Keras 3 gives every optimizer clipnorm/clipvalue/weight_decay; only SGD and RMSprop have momentum.
OPTIMIZER_FORMS = forms(
    Form("sgd", "sgd(momentum=0.9, nesterov=true)",
         (Arg("momentum", unit_interval), Arg("nesterov", boolean), *_CLIP_ARGS), keyword_only=True),
    Form("adam", "adam(clipnorm=1.0)", _CLIP_ARGS, keyword_only=True),
    Form("nadam", "nadam", _CLIP_ARGS, keyword_only=True),
    Form("rmsprop", "rmsprop(momentum=0.9)", (Arg("momentum", unit_interval), *_CLIP_ARGS),
         keyword_only=True),
    Form("adamw", "adamw(weight_decay=0.004)", _CLIP_ARGS, keyword_only=True),
)


def parse_optimizer(text: str) -> Spec:
    spec = parse_spec(text, OPTIMIZER_FORMS, "optimizers")
    # Keras refuses an optimizer with both clip kinds; say so at load time rather than at build time.
    if "clipnorm" in spec.args and "clipvalue" in spec.args:
        raise SpecSyntaxError(
            f"{quoted(text)} sets both clipnorm and clipvalue, but Keras accepts only one of them per "
            "optimizer"
        )
    return spec
