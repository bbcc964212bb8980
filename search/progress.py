"""The progress bar shown during a search: trials done against the budget and the best value so far."""

from __future__ import annotations

import math
import sys
from typing import Any

from storage import TrialRecord, TrialState


class ProgressBar:
    """A tqdm bar on stderr fed by the recorder's finish events; silent when ``enabled`` is false."""

    def __init__(
        self,
        *,
        total: int | None,
        initial: int,
        objective: str,
        direction: str,
        best: float | None,
        enabled: bool = True,
    ) -> None:
        self.objective = objective
        self.direction = direction
        self.best = best
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=min(initial, total) if total else initial, unit="trial",
                file=sys.stderr, dynamic_ncols=True, leave=True,
            )
            self._show(last=None)

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.direction == "minimize" else value > self.best

    def trial_finished(self, trial: TrialRecord) -> None:
        if (
            trial.state is TrialState.COMPLETE
            and trial.value is not None
            and math.isfinite(trial.value)
            and self._better(trial.value)
        ):
            self.best = trial.value
        if self._bar is None:
            return
        if not trial.interrupted:
            self._bar.update(1)
        self._show(last=trial)

    def show(self, done: int, best: float | None) -> None:
        """Jump to what the database says (the supervisor's view of all its workers)."""
        self.best = best
        if self._bar is None:
            return
        if done != self._bar.n:
            self._bar.n = done
        self._show(last=None)

    def write(self, message: str) -> None:
        """A message above the bar without breaking it."""
        if self._bar is None:
            print(message, file=sys.stderr)
        else:
            self._bar.write(message, file=sys.stderr)

    def _show(self, last: TrialRecord | None) -> None:
        best = "-" if self.best is None else f"{self.best:.4g}"
        postfix = {f"best {self.objective}": best}
        if last is not None:
            postfix["last"] = f"#{last.number} {last.state.value.lower()}"
        self._bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
