"""What an engine gives the driver: a search session that proposes tasks and learns their results.

The driver (:mod:`hpsearch.driver`) owns the loop for every engine: when to stop, the budget, retries
first, giving up, trials in flight, Ctrl-C. An engine only decides *what* to try, in the spirit of
ask/tell: ``propose`` hands out tasks (a proposal and how to train it), ``learn`` takes each result back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..training.recorder import current_worker
from ..training.runner import Attempt, Proposal, RunResult, TrialOutcome

if TYPE_CHECKING:
    from hpsearch.storage import TrialRecord

    from ..executors.cluster import StopSignal
    from ..training.context import RunContext

#: How the trial runner trains one trial: the attempt in, how it ended out.
Fit = Callable[[Attempt], TrialOutcome]


@dataclass(frozen=True, eq=False)
class Task:
    """One proposal and how to train it.

    Tasks of one ``propose`` that share a ``pack_key`` (not None) train together in one process
    (``--pack``, :mod:`hpsearch.training.packing`) through ``train_together``; a retry always trains alone.
    """

    proposal: Proposal
    #: Training alone, as the trial runner calls it.
    train: Fit
    #: The engine's own handle on the proposal (an Optuna trial, a KerasTuner trial, a candidate).
    handle: Any = None
    pack_key: Hashable | None = None
    #: Training of several tasks at once: the claimed members' attempts in, one outcome (or the exception
    #: that ended that member alone) per attempt out.
    train_together: Callable[[list[Task], list[Attempt]], Sequence[TrialOutcome | Exception]] | None = None


class SearchSession(ABC):
    """One run of an engine's search, driven by :func:`hpsearch.driver.drive`.

    The driver calls ``start`` once, ``retry`` with the interrupted trials due another attempt, then
    ``propose`` while the budget has room and ``learn`` with each result, and ``finish`` when the loop
    ended without an error; ``close`` always comes last. ``abandon`` is told of a proposal that was never
    handed to the trial runner (the run stopped first), ``interrupt`` of one whose training an error or
    Ctrl-C cut short (the runner recorded it interrupted).
    """

    #: Tasks train in threads, several in flight, each waiting on a process or a Dask task that honours
    #: the stop signal given to ``start``; otherwise each trains in the driver's thread.
    threaded: bool = False
    #: Why the plan ended before its budget, when the session ended it (a note for the user), else None.
    ended_by: str | None = None

    def start(self, stopping: StopSignal | None) -> None:  # noqa: B027 - most sessions start lazily
        """Open what the search needs (an oracle, a study, a cluster client, fold processes).

        Args:
            stopping: for a ``threaded`` session, the signal that tells tasks in flight to stop; else None.
        """

    @property
    def width(self) -> int:
        """How many tasks may be in flight at once (read before each proposal)."""
        return 1

    @abstractmethod
    def retry(self, trials: list[TrialRecord]) -> None:
        """Queue the configurations of ``trials`` (interrupted) to be proposed before anything new, each as
        a proposal whose ``retry_of`` names its trial."""

    @abstractmethod
    def propose(self, room: int | None) -> list[Task] | None:
        """The next tasks, at most ``room`` (None: no trial limit) of them, queued retries first.

        Returns:
            Tasks to train; ``[]`` when nothing can be proposed until a task in flight ends; None when the
            plan is finished (``ended_by`` may say why).
        """

    @abstractmethod
    def learn(self, task: Task, result: RunResult) -> None:
        """Take the result of a task the trial runner ran (trained, or refused: a duplicate, the budget)."""

    def abandon(self, task: Task) -> None:  # noqa: B027 - nothing to undo for most engines
        """``task`` was proposed but never handed to the trial runner."""

    def interrupt(self, task: Task) -> None:  # noqa: B027 - the runner's record is enough for most engines
        """``task``'s training was cut short by an error that ends the run, or by Ctrl-C."""

    def finish(self) -> None:  # noqa: B027 - nothing to keep for most engines
        """The loop ended without an error: keep the engine's state for the next run."""

    def close(self) -> None:  # noqa: B027 - nothing to release for most engines
        """Release what ``start`` opened, however the run ended."""


def refuse_other_workers(ctx: RunContext, searched_by: str) -> None:
    """Refuse to start a search that one process must hold alone while another worker trains a trial of
    the study.

    Args:
        ctx: the run.
        searched_by: what runs one worker per study, for the message ("the keras-tuner engine").

    Raises:
        UsageError: a trial of the study is running in another worker, named with the trial.
    """
    others = [trial for trial in ctx.storage.running_trials(ctx.study.id) if trial.worker != current_worker()]
    if others:
        raise UsageError(
            f"study '{ctx.study.name}' is being searched by worker {others[0].worker} (trial "
            f"#{others[0].number} is running); {searched_by} runs one worker per study"
        )
