"""What makes a study reproducible, recorded when it is created and checked when it resumes.

A study's trials are a function of its seed, its data (fingerprint), the library versions, the Keras
backend and the numerical settings of the machine (oneDNN's fused kernels, TensorFlow's deterministic
ops, the visible GPUs, the number of CPUs). With all of them unchanged, a study killed at any instant and
resumed ends with the trials, configurations and values, bit for bit, of the run that was never
interrupted (one worker; see "Reproducibility" in docs/resume.md). ``studies --json`` and the model card show
them; ``resume`` warns about each one that changed: the trials that follow may then differ in their last
digits, or more.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..seeds import study_seed
from ..settings import ENVIRONMENT_KEY, StudySettings

if TYPE_CHECKING:
    from hpsearch.storage import StudyRecord

#: Study settings key of the environment recorded at creation (versions are the study's own column).
ENVIRONMENT_SETTING = ENVIRONMENT_KEY


def numerical_environment(backend: str) -> dict[str, Any]:
    """The study's Keras ``backend`` (``hpsearch.runtime.backends``) and the settings that change
    floating-point
    results on this machine.

    Read without importing Keras or TensorFlow (seconds a run's supervisor does not otherwise pay): the
    environment variables that steer TensorFlow's kernels.
    """
    return {
        "backend": backend,
        "determinism": {
            # oneDNN's fused kernels sum in another order; TensorFlow turns them on by default on x86.
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "TF_DETERMINISTIC_OPS": os.environ.get("TF_DETERMINISTIC_OPS", "unset"),
            # A GPU's kernels are not deterministic; hidden devices decide whether one is used.
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            # Eigen splits a reduction across threads: another thread count may sum in another order.
            "cpus": os.cpu_count(),
        },
    }


def study_reproducibility(study: StudyRecord) -> dict[str, Any]:
    """One block for ``studies --json`` and the model card: everything a rerun must match."""
    settings = StudySettings.from_record(study.settings)
    environment = settings.environment or {}
    return {
        "seed": study_seed(settings.seed),
        "data_fingerprint": study.dataset.get("fingerprint"),
        "backend": environment.get("backend"),
        "determinism": environment.get("determinism"),
        "versions": dict(study.versions),
    }


def changes_since(versions: Mapping[str, Any], environment: Mapping[str, Any] | None,
                  now_versions: Mapping[str, Any], now_environment: Mapping[str, Any]) -> list[str]:
    """``'tensorflow 2.20.0, now 2.21.0'`` for each version or setting that differs now; a study written
    before they were recorded has nothing to compare (no lines)."""
    lines = [f"{name} {versions[name]}, now {now_versions.get(name, 'not installed')}"
             for name in sorted(versions) if versions[name] != now_versions.get(name, "not installed")]
    if environment:
        flat_then, flat_now = _flatten(environment), _flatten(now_environment)
        lines += [f"{name} {flat_then.get(name, 'unset')}, now {flat_now.get(name, 'unset')}"
                  for name in sorted(set(flat_then) | set(flat_now))
                  if flat_then.get(name) != flat_now.get(name)]
    return lines


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
