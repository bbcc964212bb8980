"""Optuna's storage, with what cannot change while this process runs a trial kept in memory.

Optuna's Hyperband and successive-halving pruners find a trial's current rung from its system attributes
(``completed_rung_k``) at every reported epoch, and Optuna reads them from the database each time: the
whole trial rebuilt row by row, about 10 ms on SQLite. Hyperband also opens a study object per bracket at
every epoch, which looks the study's id up by name in the database. Profiled on the LCBench surrogate (a
training function whose epochs cost nothing), those reads were 16 of the 19 ms each epoch cost under the
default Hyperband pruner, more than many small Keras models take to train an epoch.

While a trial runs, only the process running it writes its system attributes (the pruner's rungs, the
sampler's bookkeeping), and it writes them through this storage, so this process can keep what it read
and wrote instead of reading it again. Every write still goes to the database first: other workers, the
``optuna`` CLI, optuna-dashboard and a resume see exactly what they saw before. A trial leaves the memory
when its state changes (told, failed, pruned); Optuna's own cache then holds it as a finished trial.
A study's id is kept once found: a study keeps its id while it exists.
"""

from __future__ import annotations

import json
from typing import Any

# Optuna's own caching layer (the one ``optuna.create_study`` wraps every RDB storage in); private, so the
# version is pinned below the next minor release in pyproject.toml.
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import TrialState


class LeanReadStorage(_CachedStorage):
    """An RDB storage, as Optuna caches it, that also remembers study ids and its running trials' system
    attributes.

    Args:
        backend: the study's ``optuna.storages.RDBStorage``.
    """

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._running_attrs: dict[int, dict[str, Any]] = {}
        self._study_ids: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Optuna's storages pickle (its lock is left out and made anew); a copy in another process runs
        # none of this process's trials, so it starts with no running trial's attributes.
        state = super().__getstate__()
        state["_running_attrs"] = {}
        return state

    def get_study_id_from_name(self, study_name: str) -> int:
        """The study's id, read from the database once (a missing study raises ``KeyError`` each time)."""
        study_id = self._study_ids.get(study_name)
        if study_id is None:
            study_id = self._study_ids[study_name] = super().get_study_id_from_name(study_name)
        return study_id

    def delete_study(self, study_id: int) -> None:
        """Delete the study, forgetting its id."""
        super().delete_study(study_id)
        self._study_ids = {name: known for name, known in self._study_ids.items() if known != study_id}

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """The trial's system attributes: from memory while it runs here, else from Optuna's storage."""
        with self._lock:
            attrs = self._running_attrs.get(trial_id)
            if attrs is not None:
                return dict(attrs)
        trial = self.get_trial(trial_id)
        if trial.state != TrialState.RUNNING:
            return trial.system_attrs
        with self._lock:
            self._running_attrs.setdefault(trial_id, dict(trial.system_attrs))
        return dict(trial.system_attrs)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Write the attribute to the database, then to the memory of a running trial.

        The value is kept as the database returns it (through JSON: a tuple comes back a list)."""
        super().set_trial_system_attr(trial_id, key, value)
        with self._lock:
            attrs = self._running_attrs.get(trial_id)
            if attrs is not None:
                attrs[key] = json.loads(json.dumps(value))

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        """Change the trial's state in the database; a trial whose state changes leaves the memory."""
        with self._lock:
            self._running_attrs.pop(trial_id, None)
        return super().set_trial_state_values(trial_id, state=state, values=values)
