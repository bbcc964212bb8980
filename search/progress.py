"""The progress shown during a search: trials done against the budget and the best value so far.

On a terminal it is a tqdm bar redrawn in place, and in a Jupyter notebook ``tqdm.auto``'s bar (a widget
where ipywidgets is installed). When stderr is a file or a pipe (``nohup``, a batch job, CI), a redrawn
bar would append a copy of itself every half second; there it is one plain line each time a trial ends
instead, which reads well in a log.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from hpsearch.storage import TrialRecord, TrialState


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, whose output area redraws a bar (stderr is no terminal).

    Returns:
        True inside an IPython kernel (Jupyter, VS Code notebooks), False in a terminal or a script.
    """
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has already loaded it
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class ProgressBar:
    """Progress on stderr fed by the recorder's finish events (in-process runs) or by the supervisor's
    view of the store (``show``); silent when ``enabled`` is false."""

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
        self.total = total
        self.done = min(initial, total) if total else initial
        self.enabled = enabled
        self._bar: Any = None
        if enabled and (sys.stderr.isatty() or in_notebook()):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=self.done, unit="trial", file=sys.stderr, dynamic_ncols=True, leave=True,
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
        if not trial.interrupted:  # an interrupted attempt is retried: it does not spend the budget
            self.done += 1
            if self._bar is not None:
                self._bar.update(1)
        if self._bar is not None:
            self._show(last=trial)
        elif self.enabled:
            self._log(_describe(trial, self.objective))

    def show(self, done: int, best: float | None) -> None:
        """Jump to what the database says (the supervisor's view of all its workers)."""
        changed = done != self.done or best != self.best
        self.best = best
        self.done = done
        if self._bar is not None:
            if done != self._bar.n:
                self._bar.n = done
            self._show(last=None)
        elif self.enabled and changed:
            self._log("trials done")

    def write(self, message: str) -> None:
        """A message above the bar without breaking it."""
        if self._bar is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self._bar.write(message, file=sys.stderr)

    def _best_text(self) -> str:
        return "-" if self.best is None else f"{self.best:.4g}"

    def _log(self, what: str) -> None:
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        self.write(f"[{count}] {what}; best {self.objective} {self._best_text()}")

    def _show(self, last: TrialRecord | None) -> None:
        postfix = {f"best {self.objective}": self._best_text()}
        if last is not None:
            postfix["last"] = f"#{last.number} {last.state.value.lower()}"
        self._bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _describe(trial: TrialRecord, objective: str) -> str:
    """``trial #3 complete, val_accuracy 0.9333`` (pruned: at which epoch; interrupted: retried)."""
    state = trial.state.value.lower()
    if trial.interrupted:
        return f"trial #{trial.number} interrupted (it is retried)"
    if trial.state is TrialState.PRUNED:
        state = f"pruned after epoch {trial.epochs_run}"
    value = "" if trial.value is None else f", {objective} {trial.value:.4g}"
    return f"trial #{trial.number} {state}{value}"
