"""The stacked model of a population (:class:`Population`); the interface is described in
:mod:`hpsearch.training.population`, the arithmetic in :mod:`hpsearch.training.population_ops`.

Layout: the members are kept sorted by optimizer and activation, so each optimizer's members are one
contiguous block of rows, and each activation's members runs of rows within it: each step applies every
activation to its own runs and updates every block with its own formula, no member computing another's
(computing every kind for every member and selecting made a step up to three times slower). Each
member's parameters (kernels and biases, the widest member's shapes, narrower members zero-padded) are
one row of a ``[members, parameters]`` variable, its optimizer slots two more. The public methods take
and return members in the caller's order.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..seeds import epoch_order_seed
from . import population_ops as ops

if TYPE_CHECKING:
    from hpsearch.spaces import TaskInfo


def population_key(config: Mapping[str, Any]) -> Hashable | None:
    """Configurations with equal keys train well in one population: the same number of hidden layers and
    batch size (other batch sizes may join, padded to the largest). None: the configuration trains alone
    (batch normalisation, a model function).

    Args:
        config: a builder configuration.

    Returns:
        The key, or None.
    """
    from hpsearch.spaces import DEFAULTS
    from hpsearch.spaces.space import MODEL_KEY

    merged = {**DEFAULTS, **config}
    if config.get(MODEL_KEY) is not None or merged["batch_norm"]:
        return None
    return "population", int(merged["n_hidden"]), int(merged["batch_size"])


@dataclass(frozen=True)
class PopulationMember:
    """One configuration of a population and what it trains with (see hpsearch.training.population)."""

    config: Mapping[str, Any]
    seed: int
    callbacks: Sequence[Any] = ()
    #: Row indices into the training arrays (None: every row), e.g. a fold's training part.
    train_rows: Any = None
    #: Row indices into the validation arrays (None: every row), e.g. a fold's held-out part.
    val_rows: Any = None


def member_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A member's hyperparameters as the builder resolves them (``spaces.builder._optimizer``)."""
    from hpsearch.spaces import DEFAULTS
    from hpsearch.spaces.hyperparameters import check_value, parse_value
    from hpsearch.spaces.schedules import learning_rates

    merged = {name: check_value(name, value) for name, value in {**DEFAULTS, **config}.items()}
    optimizer = parse_value("optimizer", merged["optimizer"])
    args = dict(optimizer.args)
    clipping = parse_value("clipping", merged["clipping"])
    if clipping.name != "none" and not {"clipnorm", "clipvalue"} & args.keys():
        args[clipping.name] = clipping.args[clipping.name]
    momentum = merged["momentum"] if optimizer.name in ("sgd", "rmsprop") else 0.0
    regularizer = parse_value("kernel_regularizer", merged["kernel_regularizer"])
    constraint = parse_value("kernel_constraint", merged["kernel_constraint"])
    return {
        **merged,
        "optimizer_kind": optimizer.name,
        "momentum": float(args.get("momentum", momentum)),
        "nesterov": float(bool(args.get("nesterov", merged["nesterov"])) and optimizer.name == "sgd"),
        "clipnorm": float(args.get("clipnorm") or 0.0),
        "clipvalue": float(args.get("clipvalue") or 0.0),
        # Keras' AdamW decays by 0.004 unless told otherwise; the others only when told.
        "weight_decay": float(args.get("weight_decay", 0.004 if optimizer.name == "adamw" else 0.0) or 0.0),
        "l1": float(regularizer.args.get("l1", 0.0)),
        "l2": float(regularizer.args.get("l2", 0.0)),
        "max_norm": float(constraint.args["max_value"]) if constraint.name == "max_norm" else 0.0,
        "rates": learning_rates(merged),
    }


def _variance_scaling(text: str) -> tuple[float, str, str]:
    """``(scale, mode, distribution)`` of the builder's initializer ``text`` (every one it offers is a
    Keras ``VarianceScaling``)."""
    import keras
    from hpsearch.spaces.builder import _initializer

    if text not in _SCALINGS:
        initializer = keras.initializers.GlorotUniform() if text == _OUTPUT else _initializer(text)
        _SCALINGS[text] = (float(initializer.scale), initializer.mode, initializer.distribution)
    return _SCALINGS[text]


#: The output layer's initializer (the builder leaves Keras' default, ``glorot_uniform``).
_OUTPUT = "output: glorot_uniform"
_SCALINGS: dict[str, tuple[float, str, str]] = {}
#: One traced function per (distribution, spread, shape): it draws the kernels of many seeds at once.
_DRAWERS: dict[tuple[str, float, tuple[int, int]], Any] = {}


def _kernel_draws(settings: Mapping[str, Any], seed: int, n_features: int,
                  n_out: int) -> list[tuple[tuple[str, float, tuple[int, int]], int]]:
    """What ``build_model`` draws each kernel of the member from after ``keras.utils.set_random_seed(seed)``:
    per kernel, its distribution, spread and shape, and its seed.

    An unseeded Keras initializer, and each ``Dropout`` layer's seed generator, takes its seed from
    Python's ``random`` when it is created (``keras.random.make_default_seed``), in the builder's order:
    each hidden layer's initializer, then its dropout layer, then the output layer's initializer. Those
    draws are replayed here from ``random.Random(seed)``, which is what ``set_random_seed`` seeds.
    """
    import random

    draws = random.Random(seed)
    kernels, fan_in = [], n_features
    layers = [(settings["kernel_initializer"], settings["n_neurons"])] * settings["n_hidden"]
    for index, (text, fan_out) in enumerate([*layers, (_OUTPUT, n_out)]):
        scale, mode, distribution = _variance_scaling(text)
        # keras.initializers.VarianceScaling.__call__
        fans = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2.0)
        scale /= max(1.0, fans)
        spread = (math.sqrt(scale) / 0.87962566103423978 if distribution == "truncated_normal"
                  else math.sqrt(scale) if distribution == "untruncated_normal" else math.sqrt(3.0 * scale))
        kernels.append(((distribution, spread, (fan_in, fan_out)), draws.randint(1, int(1e9))))
        fan_in = fan_out
        if index < settings["n_hidden"] and settings["dropout"] > 0:
            draws.randint(1, int(1e9))  # the dropout layer's seed generator
    return kernels


def _drawn(key: tuple[str, float, tuple[int, int]], seeds: Sequence[int]) -> np.ndarray:
    """The kernels ``keras.random`` draws for ``key`` with each of ``seeds``: ``[seeds, *shape]``, the same
    values as the initializer called with that seed, each from its own stateless op (one traced call)."""
    import tensorflow as tf

    if key not in _DRAWERS:
        distribution, spread, shape = key

        def one(seed: Any) -> Any:
            if distribution == "truncated_normal":
                return tf.random.stateless_truncated_normal(shape, mean=0.0, stddev=spread, seed=seed)
            if distribution == "untruncated_normal":
                return tf.random.stateless_normal(shape, mean=0.0, stddev=spread, seed=seed)
            return tf.random.stateless_uniform(shape, minval=tf.cast(-spread, tf.float32),
                                               maxval=tf.cast(spread, tf.float32), seed=seed)

        _DRAWERS[key] = tf.function(lambda seeds: tf.map_fn(one, seeds, fn_output_signature=tf.float32))
    # keras' draw_seed: [seed, 0] (int64, then floormod int32.max - 1, a no-op below 1e9).
    pairs = np.stack([np.asarray(seeds, "int32"), np.zeros(len(seeds), "int32")], axis=1)
    return _DRAWERS[key](tf.constant(pairs)).numpy()


def _initial_kernels(settings: Mapping[str, Any], seed: int, n_features: int, n_out: int) -> list[Any]:
    """The member's initial kernels, exactly as ``build_model`` draws them (``tests/test_population.py``)."""
    return [_drawn(key, [drawn])[0] for key, drawn in _kernel_draws(settings, seed, n_features, n_out)]


_VECTOR_FIELDS = ("momentum", "nesterov", "clipnorm", "clipvalue", "weight_decay", "l1", "l2", "max_norm",
                  "dropout", "learning_rate")


class Population:
    """Members of one depth as one stacked model (see hpsearch.training.population for the interface).

    Args:
        members: the configurations, their seeds, callbacks and rows.
        task: the task (its kind, input width and classes; regression target statistics are each
            member's own, from its training rows).
        x_train, y_train, x_val, y_val: the arrays the members' rows index.
        w_train: per-row training weights (class or row weights), or None.
        step_metrics: training-side metrics to log per epoch (``accuracy``, ``top_k_accuracy``, ``mae``,
            ``mse``, ``rmse``, ``r2``, ``mape``), among the task's.

    Raises:
        ValueError: members of different depths, or one that cannot join a population.
    """

    def __init__(self, members: Sequence[PopulationMember], task: TaskInfo, x_train: Any, y_train: Any,
                 x_val: Any = None, y_val: Any = None, *, w_train: Any = None,
                 step_metrics: set[str] | frozenset[str] = frozenset()) -> None:
        import tensorflow as tf
        from hpsearch.spaces import target_statistics
        from hpsearch.spaces.builder import output_units

        keys = {population_key(member.config) for member in members}
        if not members or None in keys or len({key[1] for key in keys}) != 1:  # type: ignore[index]
            raise ValueError("a population's configurations must share their number of hidden layers and "
                             "use neither batch_norm nor a model function")
        settings = [member_settings(member.config) for member in members]
        #: Internal order: by optimizer (stable); ``_position[caller's index]`` is the internal one.
        self._order = sorted(range(len(members)), key=lambda i: (
            ops.OPTIMIZER_KINDS.index(settings[i]["optimizer_kind"]), settings[i]["activation"]))
        self._position = np.argsort(self._order)
        self.members = [members[i] for i in self._order]
        self.settings = [settings[i] for i in self._order]
        self.task = task
        self.size = size = len(members)
        self.depth = self.settings[0]["n_hidden"]
        self.epochs = max(s["epochs"] for s in self.settings)
        self.step_metrics = sorted(step_metrics)
        self.x_train = tf.constant(np.asarray(x_train, dtype="float32"))
        self.y_train = tf.constant(np.asarray(y_train, dtype="float32"))
        self.w_train = tf.constant(np.ones(len(y_train), "float32") if w_train is None
                                   else np.asarray(w_train, dtype="float32"))
        self.train_rows = [np.arange(len(y_train)) if m.train_rows is None else np.asarray(m.train_rows)
                           for m in self.members]
        self.x_val = None if x_val is None else np.asarray(x_val, dtype="float32")
        self.y_val = None if y_val is None else np.asarray(y_val, dtype="float32")
        self.val_rows = [None if m.val_rows is None else np.asarray(m.val_rows) for m in self.members]
        regression = task.kind == "regression"
        self.statistics = [target_statistics(np.asarray(y_train)[rows]) if regression else (0.0, 1.0)
                           for rows in self.train_rows]
        self.target_mean = tf.constant([[mean] for mean, _ in self.statistics], tf.float32)
        self.target_std = tf.constant([[std] for _, std in self.statistics], tf.float32)
        self.outputs = output_units(task)
        self.activations = sorted({s["activation"] for s in self.settings})
        #: Runs of members sharing an activation, in internal order: ``(activation, members)``.
        self.activation_runs: list[tuple[str, int]] = []
        for s in self.settings:
            if self.activation_runs and self.activation_runs[-1][0] == s["activation"]:
                self.activation_runs[-1] = (s["activation"], self.activation_runs[-1][1] + 1)
            else:
                self.activation_runs.append((s["activation"], 1))
        kinds = [s["optimizer_kind"] for s in self.settings]
        self.blocks = [(kind, kinds.index(kind), len(kinds) - kinds[::-1].index(kind))
                       for kind in dict.fromkeys(kinds)]
        self.vectors = ops.vectors({
            **{name: [s[name] for s in self.settings] for name in _VECTOR_FIELDS},
            "optimizer": [ops.OPTIMIZER_KINDS.index(kind) for kind in kinds],
            "activation": [self.activations.index(s["activation"]) for s in self.settings],
        })
        self.learning_rate = tf.Variable(self.vectors.learning_rate, trainable=False)
        self.vectors.learning_rate = self.learning_rate
        self.uses = {name: any(s[name] > 0 for s in self.settings)
                     for name in ("dropout", "max_norm", "clipnorm", "clipvalue", "weight_decay", "l1", "l2")}
        widths = [s["n_neurons"] for s in self.settings]
        self.width = max(widths) if self.depth else 0
        self.unit_mask = None
        if self.depth and len(set(widths)) > 1:
            mask = np.zeros((size, 1, self.width), "float32")
            for index, width in enumerate(widths):
                mask[index, 0, :width] = 1.0
            self.unit_mask = tf.constant(mask)
        self._build_variables()
        self.active = tf.Variable(tf.ones([size], tf.bool), trainable=False)
        self._stopped = [False] * size
        self._logs: list[dict[str, float]] = [{} for _ in members]
        self._validation: tuple[Any, ...] | None = None
        # Dropout masks: one stream per population and step, seeded by its members' seeds.
        self._dropout_seed = int(sum(member.seed * 2654435761 for member in members) % (2**31))
        self._train_fn = tf.function(self._train_epoch, input_signature=[
            tf.TensorSpec([None, size, None], tf.int32), tf.TensorSpec([None, size, None], tf.float32),
            tf.TensorSpec([], tf.int64)])
        self._outputs_fn = tf.function(self._outputs_and_losses, reduce_retracing=True)

    # -- variables --------------------------------------------------------------------------------
    def _build_variables(self) -> None:
        import tensorflow as tf

        size, task = self.size, self.task
        fans = [task.n_features] + [self.width] * self.depth + [self.outputs]
        self.shapes: list[tuple[int, int]] = []
        for layer in range(self.depth + 1):
            self.shapes += [(fans[layer], fans[layer + 1]), (1, fans[layer + 1])]
        self.sizes = [rows * cols for rows, cols in self.shapes]
        flat = np.zeros((size, sum(self.sizes)), "float32")
        starts = np.cumsum([0, *self.sizes])
        # Every member's kernels drawn as build_model draws them; those of one distribution and shape in one
        # call (a few ms per member otherwise).
        wanted: dict[tuple[str, float, tuple[int, int]], list[tuple[int, int, int]]] = {}
        for index, (member, settings) in enumerate(zip(self.members, self.settings, strict=True)):
            for layer, (key, drawn) in enumerate(_kernel_draws(settings, member.seed, task.n_features,
                                                                self.outputs)):
                wanted.setdefault(key, []).append((index, layer, drawn))
        for key, places in wanted.items():
            rows, cols = key[2]
            kernels = _drawn(key, [drawn for _, _, drawn in places])
            for (index, layer, _), kernel in zip(places, kernels, strict=True):
                padded = np.zeros(self.shapes[2 * layer], "float32")
                padded[:rows, :cols] = kernel
                flat[index, starts[2 * layer]:starts[2 * layer + 1]] = padded.reshape(-1)
        self.parameters = tf.Variable(flat, name="population_parameters")
        self.slots = (tf.Variable(tf.zeros_like(flat)), tf.Variable(tf.zeros_like(flat)))
        self.iterations = tf.Variable(tf.zeros([size, 1]), trainable=False)
        self.u_product = tf.Variable(tf.ones([size, 1]), trainable=False)

    def _unpacked(self, flat: Any) -> list[Any]:
        """``flat`` (``[members, parameters]``) as kernels and biases, in layer order."""
        import tensorflow as tf

        return [tf.reshape(part, [self.size, *shape])
                for part, shape in zip(tf.split(flat, self.sizes, axis=1), self.shapes, strict=True)]

    # -- the traced arithmetic --------------------------------------------------------------------
    def _forward(self, x: Any, weights: Sequence[Any], training: bool, seed: Any = None) -> Any:
        import tensorflow as tf

        h = x
        for layer in range(self.depth + 1):
            kernel, bias = weights[2 * layer], weights[2 * layer + 1]
            if h.shape.rank == 2:  # rows every member shares: one einsum broadcasts them
                z = tf.einsum("bf,mfu->mbu", h, kernel) + bias
            else:
                z = tf.matmul(h, kernel) + bias
            if layer == self.depth:
                return z
            h = ops.activate(z, self.activation_runs)
            if self.unit_mask is not None:
                h = h * self.unit_mask
            if training and self.uses["dropout"]:
                h = ops.dropout(h, self.vectors.dropout,
                                tf.stack([seed[0], seed[1] * (self.depth + 1) + layer]))
        raise AssertionError("unreachable")

    def _penalty(self, weights: Sequence[Any]) -> Any:
        if not (self.uses["l1"] or self.uses["l2"]):
            return 0.0
        return ops.penalty(weights[0:2 * self.depth:2], self.vectors)

    def _losses(self, y: Any, z: Any) -> Any:
        return ops.example_losses(self.task.kind, y, z, self.target_mean, self.target_std)

    def _sum_names(self) -> list[str]:
        names = ["loss", "rows", "weight"]
        for name in self.step_metrics:
            names += ["wy", "wyy", "mse"] if name == "r2" else [name]
        return list(dict.fromkeys(names))

    def _train_epoch(self, index: Any, valid: Any, seed: Any) -> Any:
        import tensorflow as tf

        names = self._sum_names()
        totals = tf.zeros([len(names), self.size])
        for step in tf.range(tf.shape(index)[0]):
            rows, mask = index[step], valid[step]
            on = tf.logical_and(self.active, tf.reduce_max(mask, axis=1) > 0)
            x, y = tf.gather(self.x_train, rows), tf.gather(self.y_train, rows)
            weight = tf.gather(self.w_train, rows) * mask
            count = tf.reduce_sum(mask, axis=1)
            with tf.GradientTape() as tape:
                weights = self._unpacked(self.parameters)
                z = self._forward(x, weights, True, tf.stack([seed, tf.cast(step, tf.int64)]))
                data = tf.reduce_sum(self._losses(y, z) * weight, axis=1) / tf.maximum(count, 1.0)
                loss = data + self._penalty(weights)
                total = tf.reduce_sum(tf.where(on, loss, 0.0))
            self._apply(tape.gradient(total, self.parameters), on)
            metrics = self._step_metric_sums(y, z, weight)
            sums = [loss * count, count, tf.reduce_sum(weight, axis=1),
                    *(metrics[name] for name in names[3:])]
            totals += tf.where(on[None, :], tf.stack(sums), 0.0)
        return totals

    def _apply(self, gradient: Any, on: Any) -> None:
        """One optimizer step of every member that trained this step (Keras' ``apply``: clip, decay,
        update, constrain, count)."""
        import tensorflow as tf

        on = on[:, None]
        v = self.vectors
        gradient = ops.clip(gradient, v, self.sizes, self.uses["clipnorm"], self.uses["clipvalue"])
        u_product = self.u_product * ops.nadam_factor(self.iterations)
        variable, (slot1, slot2) = self.parameters, self.slots
        parts: list[list[Any]] = [[], [], []]
        for kind, start, end in self.blocks:
            sliced = (slice(start, end),) if len(self.blocks) > 1 else (slice(None),)
            stepped = ops.update(kind, variable[sliced], gradient[sliced], slot1[sliced], slot2[sliced],
                                 v.rows(start, end) if len(self.blocks) > 1 else v,
                                 self.iterations[sliced], u_product[sliced], self.uses["weight_decay"])
            for collected, value in zip(parts, stepped, strict=True):
                collected.append(value)
        new, first, second = (tf.concat(values, axis=0) if len(values) > 1 else values[0] for values in parts)
        if self.uses["max_norm"]:
            weights = self._unpacked(new)
            for layer in range(self.depth):  # hidden kernels only, as the builder constrains them
                weights[2 * layer] = ops.max_norm(weights[2 * layer], v.max_norm)
            new = tf.concat([tf.reshape(w, [self.size, -1]) for w in weights], axis=1)
        variable.assign(tf.where(on, new, variable))
        slot1.assign(tf.where(on, first, slot1))
        slot2.assign(tf.where(on, second, slot2))
        self.u_product.assign(tf.where(on, u_product, self.u_product))
        self.iterations.assign_add(tf.where(on, 1.0, 0.0))

    def _step_metric_sums(self, y: Any, z: Any, weight: Any) -> dict[str, Any]:
        """Per member, the weighted sums that give the epoch's training metrics (Keras' running means)."""
        import tensorflow as tf

        kind, sums = self.task.kind, {}
        predictions = ops.outputs(kind, z, self.target_mean[..., None], self.target_std[..., None])
        for name in self._sum_names()[3:]:
            if name == "accuracy" and kind == "binary":
                hit = tf.cast(tf.cast(predictions[..., 0] > 0.5, tf.float32) == y, tf.float32)
            elif name == "accuracy":
                hit = tf.cast(tf.cast(tf.argmax(z, axis=-1), tf.float32) == y, tf.float32)
            elif name == "top_k_accuracy":
                flat = tf.reshape(predictions, [-1, self.outputs])
                hit = tf.reshape(tf.cast(tf.math.in_top_k(tf.cast(tf.reshape(y, [-1]), tf.int32), flat, 5),
                                         tf.float32), tf.shape(y))
            else:
                error = predictions[..., 0] - y
                hit = {"mae": tf.abs(error), "mse": tf.square(error), "rmse": tf.square(error),
                       "mape": 100.0 * tf.abs(error) / tf.maximum(tf.abs(y), ops.KERAS_EPSILON),
                       "wy": y, "wyy": tf.square(y)}[name]
            sums[name] = tf.reduce_sum(hit * weight, axis=1)
        return sums

    def _outputs_and_losses(self, x: Any, y: Any, mask: Any) -> tuple[Any, Any]:
        import tensorflow as tf

        weights = self._unpacked(self.parameters)
        z = self._forward(x, weights, False)
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        data = tf.reduce_sum(self._losses(y, z) * mask, axis=1) / count
        outputs = ops.outputs(self.task.kind, z, self.target_mean[..., None], self.target_std[..., None])
        return outputs, data + self._penalty(weights)

    # -- an epoch ---------------------------------------------------------------------------------
    def _epoch_indices(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Each member's batches of ``epoch`` as ``[steps, members, rows]`` indices and a validity mask."""
        import tensorflow as tf

        sizes = [s["batch_size"] for s in self.settings]
        steps = max(max(1, math.ceil(len(rows) / size))
                    for rows, size in zip(self.train_rows, sizes, strict=True))
        index = np.zeros((steps, self.size, max(sizes)), "int32")
        valid = np.zeros(index.shape, "float32")
        for member, (rows, size) in enumerate(zip(self.train_rows, sizes, strict=True)):
            if self._stopped[member]:
                continue
            # The stateless order of hpsearch.training.fit.epoch_batches: a member alone sees these batches.
            seed = tf.constant([epoch_order_seed(self.members[member].seed), epoch], tf.int64)
            order = tf.random.experimental.stateless_shuffle(tf.range(len(rows), dtype=tf.int64), seed=seed)
            ordered = rows[order.numpy()]
            count = math.ceil(len(ordered) / size)
            padded = np.zeros(count * size, "int64")
            padded[:len(ordered)] = ordered
            index[:count, member, :size] = padded.reshape(count, size)
            valid[:count, member, :size] = (np.arange(count * size) < len(ordered)).reshape(count, size)
        return index, valid

    def train_epoch(self, epoch: int) -> None:
        """Train every active member for ``epoch`` (0-based): its learning rate for the epoch, then its
        batches, all in one traced call; ``train_logs`` then holds each member's epoch logs.

        Args:
            epoch: the epoch's number, from 0 (it picks the batch order and the scheduled learning rate).
        """
        rates = [s["rates"][min(epoch, len(s["rates"]) - 1)] for s in self.settings]
        self.learning_rate.assign(np.asarray(rates, "float32").reshape(-1, 1))
        index, valid = self._epoch_indices(epoch)
        totals = self._train_fn(index, valid, self._dropout_seed + epoch * 7919).numpy()
        sums = dict(zip(self._sum_names(), totals, strict=True))
        for member in range(self.size):
            rows, weight = float(sums["rows"][member]), max(float(sums["weight"][member]), 1e-12)
            logs = {"loss": float(sums["loss"][member]) / max(rows, 1.0)}
            for name in self.step_metrics:
                if name == "r2":
                    mean = sums["wy"][member] / weight
                    spread = sums["wyy"][member] - sums["wy"][member] * mean
                    logs[name] = float(1.0 - sums["mse"][member] / spread) if spread > 0 else 0.0
                elif name == "rmse":
                    logs[name] = math.sqrt(float(sums[name][member]) / weight)
                else:
                    logs[name] = float(sums[name][member]) / weight
            logs["learning_rate"] = float(np.float32(rates[member]))
            self._logs[member] = logs

    def train_logs(self, member: int) -> dict[str, float]:
        """``member``'s training logs of the last epoch trained: loss, step metrics, learning_rate."""
        return dict(self._logs[self._position[member]])

    def stop(self, member: int) -> None:
        """Mask ``member`` out: its weights stay as they are while the others train on."""
        inner = self._position[member]
        if not self._stopped[inner]:
            self._stopped[inner] = True
            self.active.assign(np.array([not stopped for stopped in self._stopped]))

    def _validation_arrays(self) -> tuple[Any, Any, Any, list[int]]:
        import tensorflow as tf

        assert self.x_val is not None and self.y_val is not None
        if all(rows is None for rows in self.val_rows):
            count = len(self.y_val)
            labels = np.broadcast_to(self.y_val, (self.size, count))
            return (tf.constant(self.x_val), tf.constant(labels), tf.ones([self.size, count]),
                    [count] * self.size)
        rows = [np.arange(len(self.y_val)) if r is None else r for r in self.val_rows]
        index = np.zeros((self.size, max(len(r) for r in rows)), "int64")
        mask = np.zeros(index.shape, "float32")
        for member, member_rows in enumerate(rows):
            index[member, :len(member_rows)] = member_rows
            mask[member, :len(member_rows)] = 1.0
        return (tf.constant(self.x_val[index]), tf.constant(self.y_val[index]), tf.constant(mask),
                [len(r) for r in rows])

    def validate(self, names: Sequence[str] | None = None) -> list[dict[str, float]]:
        """Each member's validation loss and the task's metrics on its validation rows.

        Args:
            names: the metrics to score (default: all of the task's, as ``val_*`` logs name them).

        Returns:
            Per member in the caller's order: ``{"loss": ..., <metric>: ...}``; ``{}`` for a stopped member
            and for every member when there are no validation rows.
        """
        from hpsearch.spaces.objectives import metric_names

        from .fit import _validation_scorer

        if self.x_val is None or self.y_val is None or len(self.y_val) == 0:
            return [{} for _ in self.members]
        if self._validation is None:
            self._validation = self._validation_arrays()
        x, y, mask, counts = self._validation
        outputs, losses = (value.numpy() for value in self._outputs_fn(x, y, mask))
        task = self.task
        wanted = sorted(names if names is not None else metric_names(task.kind, task.n_classes))
        score = _validation_scorer(task, tuple(wanted))
        # A member whose training loss diverged this epoch: as alone, only the metrics of Keras' own test
        # step are scored (hpsearch.training.fit.ValidationMetrics skips the others; the trial fails).
        stepped = tuple(name for name in wanted if name in self.step_metrics)
        score_stepped = _validation_scorer(task, stepped) if stepped else None
        labels = y.numpy()
        results: list[dict[str, float]] = []
        for member in range(self.size):
            logs = {} if self._stopped[member] else {"loss": float(losses[member])}
            diverged = not math.isfinite(self._logs[member].get("loss", 0.0))
            scorer = score_stepped if diverged else score
            if logs and scorer is not None:
                scored = scorer(labels[member, :counts[member]], outputs[member, :counts[member]])
                logs.update({name: float(value) for name, value in scored.items()})
            results.append(logs)
        return [results[inner] for inner in self._position]

    def predict(self, x: Any) -> np.ndarray:
        """Every member's outputs on rows ``x``.

        Args:
            x: ``[rows, features]``.

        Returns:
            ``[members, rows, outputs]`` in the caller's member order: probabilities (binary: of the
            positive class), or the target in its units (regression).
        """
        import tensorflow as tf

        features = tf.constant(np.asarray(x, dtype="float32"))
        rows = int(features.shape[0])
        outputs, _ = self._outputs_fn(features, tf.zeros([self.size, rows]), tf.ones([self.size, rows]))
        return outputs.numpy()[self._position]

    def keras_model(self, member: int) -> Any:
        """A plain compiled Keras model of ``member``'s configuration holding its current weights (for
        predictions, export and a checkpoint); its optimizer starts fresh.

        Args:
            member: the member's index in the caller's order.

        Returns:
            The ``keras.Model``, as ``hpsearch.spaces.build_model`` builds it.
        """
        from hpsearch.spaces import TaskInfo, build_model

        inner = self._position[member]
        mean, std = self.statistics[inner]
        task = TaskInfo(kind=self.task.kind, n_features=self.task.n_features, n_classes=self.task.n_classes,
                        target_mean=mean, target_std=std)
        model = build_model(self.members[inner].config, task)
        width = self.settings[inner]["n_neurons"]
        unpacked = [w.numpy()[inner] for w in self._unpacked(self.parameters)]
        weights = []
        for layer in range(self.depth + 1):
            rows = self.task.n_features if layer == 0 else width
            cols = width if layer < self.depth else self.outputs
            weights += [unpacked[2 * layer][:rows, :cols], unpacked[2 * layer + 1][0, :cols]]
        model.set_weights(weights)
        return model
