"""The LCBench surrogate as a training function: ``fit(params, report)`` over the LCBench space.

LCBench (Zimmer, Lindauer & Hutter, IEEE TPAMI 2021) holds learning curves of 2,000 MLP configurations
trained for 52 epochs on 34 OpenML tasks; YAHPO Gym's surrogate of it (``model.onnx``, Apache 2.0) answers
one configuration's whole curve in about a millisecond. This module wraps it for benchmarks:

- :func:`space` is the LCBench configuration space as an hpsearch space with its own parameters for a
  training function (``fixed`` holds the task as ``openml_task`` and the 52 epochs);
- :func:`make_fit` returns ``fit(params, report)``: it reports epochs 1..``params["epochs"]`` with the
  surrogate's validation accuracy (the objective, maximised), validation balanced accuracy and the
  surrogate's training ``time`` (seconds up to that epoch), optionally sleeping a scaled share of that time
  per epoch so wall time follows the simulated training time.

The surrogate's folder defaults to ``../shared/benchmarks/lcbench`` beside the checkout; the
``HPSEARCH_LCBENCH`` environment variable names another.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT.parent / "shared" / "benchmarks" / "lcbench"
EPOCHS = 52
#: The objective: validation accuracy (0-1); hpsearch accepts only metric names it knows as objectives.
OBJECTIVE = "val_accuracy"
#: The surrogate's continuous inputs in the order ``x_cont`` takes them (``epoch`` first).
INPUTS = ("batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")
#: The surrogate's outputs in the order it returns them.
OUTPUTS = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy",
           "test_balanced_accuracy")


def data_dir() -> Path:
    """The surrogate's folder (``HPSEARCH_LCBENCH`` or the shared default)."""
    return Path(os.environ.get("HPSEARCH_LCBENCH") or DEFAULT_DIR)


def available() -> bool:
    """Whether the surrogate and onnxruntime are there (benchmarks and tests skip without them)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return (data_dir() / "model.onnx").is_file()


def dev_tasks() -> list[str]:
    """The 20 development tasks (``tasks-dev.txt``); the other 14 are kept for evaluation."""
    return [line.strip() for line in (data_dir() / "tasks-dev.txt").read_text().splitlines() if line.strip()]


@functools.lru_cache(maxsize=1)
def _config_space() -> dict[str, dict[str, Any]]:
    document = json.loads((data_dir() / "config_space.json").read_text())
    return {item["name"]: item for item in document["hyperparameters"]}


def space(task: str, epochs: int = EPOCHS) -> dict[str, Any]:
    """The LCBench space of one task as an hpsearch space mapping (own parameters of a training function).

    Args:
        task: an OpenML task id of the surrogate (e.g. ``"34539"``).
        epochs: the epochs of a full trial (52, LCBench's; fewer for short tests).

    Returns:
        The space mapping ``hpsearch.run`` takes with ``train=``.
    """
    params: dict[str, Any] = {}
    for name in INPUTS:
        item = _config_space()[name]
        kind = "int" if item["type"] == "uniform_int" else "float"
        low, high = item["lower"], item["upper"]
        if kind == "float":  # the file's bounds carry float noise (1.0000000000000009e-4)
            low, high = float(f"{low:.10g}"), float(f"{high:.10g}")
        params[name] = {"type": kind, "low": low, "high": high, "log": bool(item["log"])}
    return {"objective": OBJECTIVE, "params": params, "fixed": {"openml_task": str(task), "epochs": epochs}}


class Surrogate:
    """One onnxruntime session of the surrogate, shared by the threads of a process."""

    def __init__(self, directory: Path | None = None) -> None:
        import onnxruntime

        directory = directory or data_dir()
        options = onnxruntime.SessionOptions()
        # One thread per query: the benchmarks run many studies side by side on few cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(directory / "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        self.codes = json.loads((directory / "encoding.json").read_text())["OpenML_task_id"]
        self._lock = threading.Lock()

    def curve(self, task: str, config: Mapping[str, Any], epochs: int = EPOCHS) -> dict[str, np.ndarray]:
        """The surrogate's outputs for epochs 1..``epochs`` of one configuration: name -> array."""
        if str(task) not in self.codes:
            raise ValueError(f"task {task!r} is not one of the surrogate's OpenML tasks")
        x_cat = np.full((epochs, 1), self.codes[str(task)], dtype=np.int32)
        x_cont = np.empty((epochs, 1 + len(INPUTS)), dtype=np.float32)
        x_cont[:, 0] = np.arange(1, epochs + 1)
        x_cont[:, 1:] = [float(config[name]) for name in INPUTS]
        with self._lock:
            out = self.session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0]
        curves = {name: out[:, column].astype(float) for column, name in enumerate(OUTPUTS)}
        curves["val_accuracy"] = curves["val_accuracy"] / 100.0  # percent in the surrogate
        return curves


@functools.lru_cache(maxsize=1)
def surrogate() -> Surrogate:
    """The process's one surrogate session."""
    return Surrogate()


def make_fit(sleep_scale: float = 0.0, on_epoch: Callable[[str, int, float], None] | None = None
             ) -> Callable[[Mapping[str, Any], Callable[..., None]], float]:
    """A training function ``fit(params, report) -> float`` over the surrogate.

    Args:
        sleep_scale: each epoch sleeps this share of the surrogate's training seconds for it (0: none;
            1e-4 turns a 100-second epoch into 10 ms).
        on_epoch: called with (task, epoch, simulated seconds of that epoch) before each report; the
            benchmarks count simulated time with it.

    Returns:
        The training function: it reports epochs 1..``params["epochs"]`` with ``val_accuracy``,
        ``val_balanced_accuracy`` and ``time`` and returns the last accuracy reported.
    """
    def fit(params: Mapping[str, Any], report: Callable[..., None]) -> float:
        task = str(params["openml_task"])
        epochs = int(params["epochs"])
        curves = surrogate().curve(task, params, epochs)
        value = 0.0
        previous = 0.0
        for index in range(epochs):
            seconds = max(0.0, float(curves["time"][index]) - previous)
            previous = float(curves["time"][index])
            if sleep_scale > 0:
                time.sleep(seconds * sleep_scale)
            if on_epoch is not None:
                on_epoch(task, index + 1, seconds)
            value = float(curves[OBJECTIVE][index])
            report(index + 1, val_accuracy=value,
                   val_balanced_accuracy=float(curves["val_balanced_accuracy"][index]),
                   time=previous)
        return value

    return fit


fit = make_fit()


def sleepy_fit(params: Mapping[str, Any], report: Callable[..., None]) -> float:
    """:data:`fit` sleeping ``$HPSEARCH_LCBENCH_SLEEP`` times each epoch's simulated seconds (worker
    processes import it by name: ``lcbench:sleepy_fit`` with ``scripts/`` on ``PYTHONPATH``)."""
    return make_fit(float(os.environ.get("HPSEARCH_LCBENCH_SLEEP", "0")))(params, report)
