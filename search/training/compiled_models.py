"""Compiled models reused across fits of the same structure, so that TensorFlow traces a structure once per
process rather than once per fit.

Half or more of a short fit is tracing: Keras builds the train, test and predict functions of every new
model (py-spy, the absenteeism grid's shape on breast_cancer, 2 epochs: ``_maybe_define_function`` 49% of
a fold's fit, the arithmetic 7%). Those functions depend on the model's structure (layers, activation,
regularizer, constraint, dropout, optimizer and its clipping, loss, metrics, steps per execution) but not
on the values of its variables: the initial weights (the initializer, the seed), the dropout seeds and the
learning rate are variables. A grid crosses structures with initializers, learning rates and batch sizes,
and fits every candidate once per fold: the absenteeism grid has 64 structures for 768 x 3 fits.

So a fit still builds its fresh model (cheap: variables, no tracing) exactly as it would alone, and then
trains the cached model of the same structure with the fresh model's variables copied in: weights, dropout
seed states, and the optimizer's variables (iteration, learning rate, slots) as a fresh optimizer starts
them. Same graph, same starting values: the same training, bit for bit (``tests/test_sklearn_wrapper.py``
compares the fold scores with and without the cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

#: Structures kept per process, the least recently used dropped first. A small MLP's model with its traced
#: functions holds a few MB.
CAPACITY = 64


class CompiledModels:
    """One process's compiled models, by structure key (see ``adopt``)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._models: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def adopt(self, fresh: Any, key: Hashable) -> Any:
        """The model to train in place of ``fresh``, a freshly built and compiled model.

        ``key`` must name everything that shapes the model's traced functions (see the module's
        docstring). Returns the cached model of that key holding ``fresh``'s starting state, or ``fresh``
        itself, which is then cached for the next fit of its structure.
        """
        cached = self._models.get(key)
        if cached is not None and self._restart(cached, fresh):
            self.hits += 1
            self._models.move_to_end(key)
            return cached
        self.misses += 1
        self._models[key] = fresh
        self._models.move_to_end(key)
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return fresh

    @staticmethod
    def _restart(cached: Any, fresh: Any) -> bool:
        """Copy ``fresh``'s variables (model and optimizer) into ``cached``; False if their layouts differ
        (the cached model's optimizer was never built, its fit having failed first)."""
        fresh.optimizer.build(fresh.trainable_variables)  # its slots as a fresh fit starts them
        pairs = [*zip(cached.variables, fresh.variables, strict=False),
                 *zip(cached.optimizer.variables, fresh.optimizer.variables, strict=False)]
        if (len(cached.variables) != len(fresh.variables)
                or len(cached.optimizer.variables) != len(fresh.optimizer.variables)
                or any(tuple(target.shape) != tuple(source.shape) or target.dtype != source.dtype
                       for target, source in pairs)):
            return False
        for target, source in pairs:
            target.assign(source)
        cached.stop_training = False
        return True
