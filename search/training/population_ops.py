"""The arithmetic of a population (:mod:`hpsearch.training.population`): Keras' layers, losses, optimizers,
clipping and constraints, written for weights stacked along a leading member axis.

Every tensor here has the member axis first (``[members, ...]``); a per-member hyperparameter is a column
``[members, 1]``. The optimizers work on each member's parameters flattened into one row (``[members,
parameters]``), so one step of every member is a handful of element-wise operations whatever the depth.
Each function follows the Keras 3 code it stands for (named in its docstring) operation by operation, so
that a member's arithmetic is the arithmetic it has alone, up to the order of floating-point sums inside
the batched kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Optimizers a population trains, by the builder's names; each has the Keras 3 defaults below.
OPTIMIZER_KINDS = ("sgd", "adam", "adamw", "nadam", "rmsprop")
_BETA_1, _BETA_2, _EPSILON, _RHO = 0.9, 0.999, 1e-7, 0.9
#: Keras' ``backend.epsilon()``, used by ``MaxNorm`` and ``mape``.
KERAS_EPSILON = 1e-7


@dataclass
class MemberVectors:
    """Per-member hyperparameters, each a float32 tensor of shape ``[members, 1]`` (see ``vectors``)."""

    learning_rate: Any
    momentum: Any
    nesterov: Any
    clipnorm: Any
    clipvalue: Any
    weight_decay: Any
    l1: Any
    l2: Any
    max_norm: Any
    dropout: Any
    #: Index of the member's optimizer in ``OPTIMIZER_KINDS`` and of its activation in the population's
    #: activation list (for the record: the layout, not these, decides what a member computes).
    optimizer: Any
    activation: Any

    def rows(self, start: int, end: int) -> MemberVectors:
        """The members ``start`` to ``end - 1`` only."""
        return MemberVectors(**{name: value[start:end] for name, value in vars(self).items()})


def vectors(columns: Mapping[str, Sequence[float]]) -> MemberVectors:
    """``MemberVectors`` from one list per field (one value per member)."""
    import tensorflow as tf

    return MemberVectors(**{name: tf.reshape(tf.constant(values, tf.float32), [-1, 1])
                            for name, values in columns.items()})


def activate(z: Any, runs: Sequence[tuple[str, int]]) -> Any:
    """Each member's activation of ``z`` (``[members, rows, units]``), with Keras' own functions.

    ``runs``: consecutive members sharing an activation, ``(name, count)`` in member order; each run is
    split off (``tf.split``, whose gradient is one concatenation) and activated alone.
    """
    import keras
    import tensorflow as tf

    if len(runs) == 1:
        return keras.activations.get(runs[0][0])(z)
    parts = tf.split(z, [count for _, count in runs], axis=0)
    activated = [keras.activations.get(name)(part) for (name, _), part in zip(runs, parts, strict=True)]
    return tf.concat(activated, axis=0)


def dropout(h: Any, rate: Any, seed: Any) -> Any:
    """Keras' ``Dropout`` in training: units drawn below ``rate`` are zeroed, the rest scaled by
    ``1 / (1 - rate)``; a member whose rate is 0 is left as it is."""
    import tensorflow as tf

    rate = rate[:, :, None]
    draw = tf.random.stateless_uniform(tf.shape(h), seed=seed)
    kept = tf.where(draw >= rate, h / (1.0 - rate), tf.zeros_like(h))
    return tf.where(rate > 0.0, kept, h)


def example_losses(kind: str, y: Any, z: Any, target_mean: float, target_std: float) -> Any:
    """Per-example loss ``[members, rows]`` of the output layer's pre-activation ``z`` (``[members, rows,
    outputs]``), as the builder's loss computes it: binary and sparse categorical cross-entropy from the
    logits (what Keras does under a sigmoid or softmax output), mean squared error of the standardized
    target times ``1 / std**2`` (the builder's loss weight) for regression. ``y``: ``[members, rows]``."""
    import tensorflow as tf

    if kind == "binary":
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z[..., 0])
    if kind == "multiclass":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=z)
    return tf.square(target_mean + target_std * z[..., 0] - y) * (1.0 / target_std**2)


def outputs(kind: str, z: Any, target_mean: float, target_std: float) -> Any:
    """The model's outputs from ``z``: probabilities (sigmoid, softmax) or the target in its own units."""
    import tensorflow as tf

    if kind == "binary":
        return tf.sigmoid(z)
    if kind == "multiclass":
        return tf.nn.softmax(z)
    return target_mean + target_std * z


def penalty(kernels: Sequence[Any], v: MemberVectors) -> Any:
    """Each member's regularization loss over its hidden kernels (Keras' ``L1``, ``L2``, ``L1L2``):
    ``[members]``."""
    import tensorflow as tf

    total = 0.0
    for kernel in kernels:
        total += (v.l1[:, 0] * tf.reduce_sum(tf.abs(kernel), axis=[1, 2])
                  + v.l2[:, 0] * tf.reduce_sum(tf.square(kernel), axis=[1, 2]))
    return total


def clip(gradient: Any, v: MemberVectors, sizes: Sequence[int], by_norm: bool, by_value: bool) -> Any:
    """Keras' ``clipnorm`` (each variable's gradient by its own norm: here each member's part of each
    variable, ``sizes`` long in the flat row) and ``clipvalue``, for the members that set them."""
    import tensorflow as tf

    if by_norm:
        l2sum = tf.stack([tf.reduce_sum(tf.square(part), axis=1)
                          for part in tf.split(gradient, list(sizes), axis=1)], axis=1)
        positive = l2sum > 0
        norm = tf.where(positive, tf.sqrt(tf.where(positive, l2sum, tf.ones_like(l2sum))), l2sum)
        # Keras: values * clipnorm / max(norm, clipnorm), each variable's norm over its own elements.
        limit = tf.repeat(tf.maximum(norm, v.clipnorm), list(sizes), axis=1)
        gradient = tf.where(v.clipnorm > 0, gradient * v.clipnorm / limit, gradient)
    if by_value:
        gradient = tf.where(v.clipvalue > 0, tf.clip_by_value(gradient, -v.clipvalue, v.clipvalue), gradient)
    return gradient


def max_norm(kernel: Any, limit: Any) -> Any:
    """Keras' ``MaxNorm(max_value, axis=0)`` on each member's kernel (``[members, fan_in, fan_out]``), for
    the members that set a ``limit`` (``[members, 1]``; 0: none)."""
    import tensorflow as tf

    limit = limit[:, :, None]
    norms = tf.sqrt(tf.reduce_sum(tf.square(kernel), axis=1, keepdims=True))
    desired = tf.clip_by_value(norms, 0.0, limit)
    return tf.where(limit > 0, kernel * (desired / (KERAS_EPSILON + norms)), kernel)


def nadam_factor(iterations: Any) -> Any:
    """The factor Nadam multiplies its ``u_product`` by before a step (Keras' ``_backend_update_step``)."""
    import tensorflow as tf

    return _BETA_1 * (1.0 - 0.5 * tf.pow(0.96, iterations + 1.0))


def update(
    kind: str, variable: Any, gradient: Any, slot1: Any, slot2: Any, v: MemberVectors, iterations: Any,
    u_product: Any, decay: bool,
) -> tuple[Any, Any, Any]:
    """One step of optimizer ``kind`` for members sharing it: ``(variable, slot1, slot2)`` after it.

    Weight decay first (``decay``: some member has it), then the optimizer's update. ``iterations`` and
    ``u_product`` (Nadam) are ``[members, 1]``, before this step's increment, ``u_product`` after this
    step's factor. The slots hold: SGD momentum in ``slot1``; Adam, AdamW, Nadam m and v; RMSprop velocity
    and momentum.
    """
    import tensorflow as tf

    if decay:
        decayed = variable - variable * v.weight_decay * v.learning_rate  # _apply_weight_decay
        variable = tf.where(v.weight_decay > 0, decayed, variable)
    return _STEPS[kind](variable, gradient, slot1, slot2, v, iterations, u_product)


def _sgd(variable: Any, g: Any, s1: Any, s2: Any, v: MemberVectors, it: Any, up: Any) -> tuple[Any, ...]:
    import tensorflow as tf

    lr, momentum = v.learning_rate, v.momentum
    m = s1 * momentum - g * lr
    with_momentum = tf.where(v.nesterov > 0, variable + (m * momentum - g * lr), variable + m)
    return tf.where(momentum != 0, with_momentum, variable - g * lr), m, s2


def _adam(variable: Any, g: Any, s1: Any, s2: Any, v: MemberVectors, it: Any, up: Any) -> tuple[Any, ...]:
    import tensorflow as tf

    step = it + 1.0
    alpha = v.learning_rate * tf.sqrt(1.0 - tf.pow(_BETA_2, step)) / (1.0 - tf.pow(_BETA_1, step))
    m = s1 + (g - s1) * (1.0 - _BETA_1)
    second = s2 + (tf.square(g) - s2) * (1.0 - _BETA_2)
    return variable - (m * alpha) / (tf.sqrt(second) + _EPSILON), m, second


def _nadam(variable: Any, g: Any, s1: Any, s2: Any, v: MemberVectors, it: Any, up: Any) -> tuple[Any, ...]:
    import tensorflow as tf

    step, following = it + 1.0, it + 2.0
    u_t = _BETA_1 * (1.0 - 0.5 * tf.pow(0.96, step))
    u_t_1 = _BETA_1 * (1.0 - 0.5 * tf.pow(0.96, following))
    u_product_t_1 = up * u_t_1
    m = s1 + (g - s1) * (1.0 - _BETA_1)
    second = s2 + (tf.square(g) - s2) * (1.0 - _BETA_2)
    m_hat = u_t_1 * m / (1.0 - u_product_t_1) + (1.0 - u_t) * g / (1.0 - up)
    v_hat = second / (1.0 - tf.pow(_BETA_2, step))
    return variable - (m_hat * v.learning_rate) / (tf.sqrt(v_hat) + _EPSILON), m, second


def _rmsprop(variable: Any, g: Any, s1: Any, s2: Any, v: MemberVectors, it: Any, up: Any) -> tuple[Any, ...]:
    import tensorflow as tf

    velocity = _RHO * s1 + (1.0 - _RHO) * tf.square(g)
    increment = v.learning_rate * g / tf.sqrt(velocity + _EPSILON)
    momentum = v.momentum * s2 + increment
    return tf.where(v.momentum > 0, variable - momentum, variable - increment), velocity, momentum


_STEPS = {"sgd": _sgd, "adam": _adam, "adamw": _adam, "nadam": _nadam, "rmsprop": _rmsprop}
