"""The Keras backend a study's trials train on: ``--backend tensorflow|jax``.

The backend is a setting of the study, not of the shell: the supervisor starts every worker with
``KERAS_BACKEND`` set to it, so a ``KERAS_BACKEND`` or ``keras.json`` the user has for other work does
not change what a study trains on, and a resumed or joined study keeps its backend.

TensorFlow is the default because it is the faster of the two here: the default workload (10 epochs on
digits) took about 1.8 s per new model on TensorFlow and 2.2-4 s on JAX, which pays an XLA compile
for every new model (``scripts/bench_throughput.py --workloads backend`` measures it side by side). The
model builder compiles with XLA on JAX only (``hpsearch.spaces.builder.jit_compile_for``).

What JAX does not run (each refused in one sentence before anything trains):

- packs (``--pack K``): a pack trains in one TensorFlow graph (``hpsearch.training.packing``);
- the scikit-learn engine: its fold trainers and compiled-model caches are TensorFlow's;
- ``--dask``: the cluster's workers start with their own environment, so their backend is not ours.

Keras is not imported here: the supervisor reads these settings without paying for it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..settings import StudySettings

BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"


def study_backend(settings: Mapping[str, Any]) -> str:
    """The backend a study's trials train on (TensorFlow for studies created before the option).

    Args:
        settings: the study's settings (a ``StudySettings``, or the stored JSON object).

    Returns:
        One of ``BACKENDS``.

    Raises:
        UsageError: a backend hpsearch does not train on.
    """
    backend = StudySettings.from_record(settings).backend or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, but got {backend!r}")
    return str(backend)


def check_backend(settings: Mapping[str, Any], *, pack: int = 1) -> None:
    """Refuse a backend the study's other settings cannot run on."""
    backend = study_backend(settings)
    if backend == "tensorflow":
        return
    if importlib.util.find_spec("jax") is None:
        raise UsageError("--backend jax needs the jax package, which is not installed here: "
                         "pip install 'hpsearch[jax]'")
    if pack > 1:
        raise UsageError(f"--pack {pack} needs --backend tensorflow: a pack trains its configurations "
                         "in one TensorFlow graph")
    if StudySettings.from_record(settings).dask not in (None, "local"):
        raise UsageError(f"--backend {backend} cannot be combined with --dask: the cluster's workers "
                         "start with their own Keras backend")


def describe_backend(settings: Mapping[str, Any]) -> str:
    """The dry-run line."""
    backend = study_backend(settings)
    jit = "with XLA (jit_compile)" if backend == "jax" else "as TensorFlow graphs, without XLA"
    return f"backend {backend}: models compile {jit}"


def worker_environment(settings: Mapping[str, Any]) -> dict[str, str]:
    """What a worker process's environment must hold for the study's backend."""
    return {"KERAS_BACKEND": study_backend(settings)}


def use_backend_here(settings: Mapping[str, Any], *, why: str) -> None:
    """Make this process train on the study's backend (``--in-process``, ``retrain``).

    Keras reads its backend once, at import: before that, setting ``KERAS_BACKEND`` is enough; after,
    only the same backend can be used, and another is refused in one sentence.
    """
    backend = study_backend(settings)
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
        return
    import keras

    loaded = keras.backend.backend()
    if loaded != backend:
        raise UsageError(f"the study trains on backend {backend}, but this process already loaded Keras on "
                         f"{loaded}; {why}")
