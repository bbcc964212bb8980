"""The hyperparameters the model builder understands, their domains and their defaults.

A space may tune or fix any subset of these; whatever it leaves out takes the default below. A name
not in this table is an error when the space is loaded, never silently ignored.

======================  ==================  ===================================================
name                    default             domain
======================  ==================  ===================================================
n_hidden                2                   int >= 0: hidden Dense blocks
n_neurons               64                  int >= 1: units per hidden block
activation              relu                relu, elu, selu, leaky_relu, tanh, gelu, swish,
                                            sigmoid, softplus
kernel_initializer      glorot_uniform      he_normal, he_uniform, lecun_normal, lecun_uniform,
                                            glorot_uniform, glorot_normal,
                                            variance_scaling(scale=, mode=, distribution=)
kernel_regularizer      none                none, l1(0.001), l2(0.01), l1_l2(l1=0.01, l2=0.01)
kernel_constraint       none                none, max_norm(1.0)
dropout                 0.0                 float in [0, 1): Dropout after each block when > 0
batch_norm              false               bool: BatchNormalization between Dense and activation
optimizer               adam                sgd, adam, nadam, rmsprop, adamw, with optional
                                            keyword arguments momentum, nesterov (sgd),
                                            clipnorm, clipvalue, weight_decay
learning_rate           0.001               float > 0
momentum                0.0                 float in [0, 1): sgd and rmsprop only
nesterov                false               bool: sgd only
clipping                none                none, clipnorm(1.0), clipvalue(1.0)
lr_schedule             none                none, step(drop=0.1, every=10), exponential(rate=0.9),
                                            cosine(epochs=20, alpha=0.0): the learning rate per
                                            epoch, as a factor of learning_rate (hpsearch.spaces.schedules)
batch_size              32                  int >= 1
epochs                  20                  int >= 1
steps_per_execution     0                   int >= 0; 0 (auto): a search trial runs each epoch's
                                            steps in one execution when there are 32 or more
                                            (its callbacks act per epoch); elsewhere 0 means 1
======================  ==================  ===================================================

Where the optimizer string and a separate knob say the same thing (``sgd(momentum=0.9)`` and
``momentum``; ``adam(clipnorm=1.0)`` and ``clipping``), the optimizer string wins: it is the more
specific statement. Keras accepts one clip kind per optimizer, so a clip in the optimizer string
replaces the ``clipping`` knob entirely.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import SpaceError
from .limits import quoted
from .specs import (
    ACTIVATION_FORMS,
    CLIPPING_FORMS,
    CONSTRAINT_FORMS,
    INITIALIZER_FORMS,
    LR_SCHEDULE_FORMS,
    REGULARIZER_FORMS,
    Spec,
    SpecSyntaxError,
    parse_optimizer,
    parse_spec,
)

KnobKind = Literal["int", "float", "bool", "spec"]


@dataclass(frozen=True)
class Knob:
    """One hyperparameter of the builder: its kind, default and domain."""

    name: str
    kind: KnobKind
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    maximum_inclusive: bool = True
    parse: Callable[[str], Spec] | None = None

    def domain(self) -> str:
        """What a value must be, in words, for error messages."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "spec":
            return "a string"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.minimum is not None and self.maximum is not None:
            closing = "]" if self.maximum_inclusive else ")"
            return f"{noun} in [{self.minimum:g}, {self.maximum:g}{closing}"
        if self.minimum is not None:
            strict = self.name == "learning_rate"
            return f"{noun} {'>' if strict else '>='} {self.minimum:g}"
        return noun


def _spec_parser(forms: Mapping[str, Any], what: str) -> Callable[[str], Spec]:
    def parse(text: str) -> Spec:
        return parse_spec(text, forms, what)

    return parse


#: ``steps_per_execution`` meaning "every step of an epoch in one execution", set by the trainer that
#: knows the epoch's steps (hpsearch.training.fit.use_epoch_executions); Keras itself gets 1 from the builder.
AUTO_EXECUTION_STEPS = 0

KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("n_hidden", "int", 2, minimum=0),
        Knob("n_neurons", "int", 64, minimum=1),
        Knob("activation", "spec", "relu", parse=_spec_parser(ACTIVATION_FORMS, "activations")),
        Knob("kernel_initializer", "spec", "glorot_uniform",
             parse=_spec_parser(INITIALIZER_FORMS, "initializers")),
        Knob("kernel_regularizer", "spec", "none", parse=_spec_parser(REGULARIZER_FORMS, "regularizers")),
        Knob("kernel_constraint", "spec", "none", parse=_spec_parser(CONSTRAINT_FORMS, "constraints")),
        Knob("dropout", "float", 0.0, minimum=0.0, maximum=1.0, maximum_inclusive=False),
        Knob("batch_norm", "bool", False),
        Knob("optimizer", "spec", "adam", parse=parse_optimizer),
        Knob("learning_rate", "float", 0.001, minimum=0.0),
        Knob("momentum", "float", 0.0, minimum=0.0, maximum=1.0, maximum_inclusive=False),
        Knob("nesterov", "bool", False),
        Knob("clipping", "spec", "none", parse=_spec_parser(CLIPPING_FORMS, "clippings")),
        Knob("lr_schedule", "spec", "none", parse=_spec_parser(LR_SCHEDULE_FORMS, "lr_schedules")),
        Knob("batch_size", "int", 32, minimum=1),
        Knob("epochs", "int", 20, minimum=1),
        Knob("steps_per_execution", "int", AUTO_EXECUTION_STEPS, minimum=0),
    )
}

#: The value every builder hyperparameter takes when a space neither tunes nor fixes it.
DEFAULTS: dict[str, Any] = {name: knob.default for name, knob in KNOBS.items()}


def is_number(value: Any) -> bool:
    """True for ints and floats (NumPy's included), never for bools."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    # NumPy scalars reach us from engines; checking the protocol keeps NumPy out of the imports.
    return getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u", "f")


def finite_number(value: Any) -> bool:
    """True for a number a float can hold (an int of 400 digits overflows ``float()``), never nan or inf."""
    try:
        return math.isfinite(float(value))
    except (OverflowError, TypeError, ValueError):
        return False


def plain(value: Any) -> Any:
    """NumPy scalars to Python ones, so configs are JSON-able and compare equal across engines."""
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return value.item()
    return value


def in_range(knob: Knob, value: float, *, strict_low: bool | None = None) -> bool:
    if knob.minimum is not None:
        strict = knob.name == "learning_rate" if strict_low is None else strict_low
        if value < knob.minimum or (strict and value == knob.minimum):
            return False
    if knob.maximum is not None:
        if value > knob.maximum or (not knob.maximum_inclusive and value == knob.maximum):
            return False
    return True


def check_value(name: str, value: Any) -> Any:
    """Check one value of builder hyperparameter ``name``; return it as a plain Python value.

    Raises :class:`SpaceError` naming the parameter (the caller adds the file).
    """
    knob = KNOBS[name]
    value = plain(value)
    if knob.kind == "bool":
        if not isinstance(value, bool):
            raise SpaceError(f"must be true or false, but got {quoted(value)}", param=name)
        return value
    if knob.kind == "spec":
        if not isinstance(value, str):
            raise SpaceError(f"must be a string, but got {quoted(value)}", param=name)
        assert knob.parse is not None
        try:
            knob.parse(value)
        except SpecSyntaxError as error:
            raise SpaceError(f"value {quoted(value)} is not valid: {error}", param=name) from None
        return value
    if not is_number(value) or not finite_number(value):
        raise SpaceError(f"must be {knob.domain()}, but got {quoted(value)}", param=name)
    if knob.kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise SpaceError(f"must be {knob.domain()}, but got {quoted(value)}", param=name)
            value = int(value)
    else:
        value = float(value)
    if not in_range(knob, value):
        raise SpaceError(f"must be {knob.domain()}, but got {quoted(value)}", param=name)
    return value


def parse_value(name: str, value: str) -> Spec:
    """The parsed form of a spec-valued hyperparameter (``optimizer``, ``kernel_regularizer``, ...)."""
    knob = KNOBS[name]
    assert knob.parse is not None
    try:
        return knob.parse(value)
    except SpecSyntaxError as error:
        raise SpaceError(f"value {quoted(value)} is not valid: {error}", param=name) from None
