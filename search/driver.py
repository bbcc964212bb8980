"""The driver: the one search loop, the same for every engine, in this process, in a worker process and
with trials on a Dask cluster.

Engines only propose and learn (:class:`hpsearch.engines.session.SearchSession`); the trial runner claims,
trains, records and finishes each trial (:mod:`hpsearch.training.runner`). The driver holds the rules of
the loop between them:

- **when to stop**: before every proposal it asks the budget tracker (trial budget, timeout, failures in
  a row, recycling, memory); the session may end its plan (``propose`` returns None);
- **the budget**: a proposal asks for at most the trials the budget still has room for; a claim the
  store refuses because other workers used the budget stops this process;
- **retries first**: the interrupted trials due another attempt are queued before anything new, and a
  trial cut short during the run (a fold process that died) is queued again at once; a configuration cut
  short ``MAX_ATTEMPTS`` times is given up (:mod:`hpsearch.retry_policy`);
- **trials in flight**: a ``threaded`` session trains up to ``width`` tasks at once, each in a thread
  waiting on its process or Dask task (:class:`hpsearch.executors.cluster.InFlight`); tasks proposed
  together that share a pack key train together (``--pack``);
- **whose fault**: an exception from one trial fails that trial and the search goes on (the runner);
  Ctrl-C, a failing database or a lost cluster end the run, every trial in flight recorded interrupted,
  and the session told which tasks were cut short or never started. Whatever ends the loop, no trial
  this process claimed is left RUNNING: the runner records each, and the trials still in flight are
  stopped before ``drive`` returns or raises.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

from .engines.session import Fit, SearchSession, Task
from .retry_policy import give_up_or
from .training.runner import Attempt, RunResult, RunStatus, TrialOutcome, TrialRunner

if TYPE_CHECKING:
    from .executors.cluster import InFlight
    from .training.context import RunContext

#: Seconds to wait before asking again a session that has nothing to propose and no task in flight
#: (an oracle waiting on a trial of another process); short, as the session counts such answers itself.
IDLE_PAUSE_S = 0.01


def drive(ctx: RunContext, session: SearchSession) -> None:
    """Search with ``session`` until the budget, the session's plan or an error ends the run.

    Args:
        ctx: the run of the study (store, study, data, recorder, budget tracker, retries due).
        session: the engine's search for this run (``Engine.session``).

    Raises:
        KeyboardInterrupt: Ctrl-C; the trials in flight are recorded interrupted.
        StorageTroubleError: the database failed (from the runner).
        ClusterLostError: the Dask cluster went away; the trials in flight are recorded interrupted.
        Whatever ``session.start`` raises (an engine refusing a second worker, a cluster out of reach).
    """
    loop = _Loop(ctx, session)
    try:
        with _in_flight(ctx, session) as in_flight:
            loop.in_flight = in_flight
            session.start(in_flight.stopping if in_flight is not None else None)
            if ctx.retries:
                session.retry(list(ctx.retries))
            loop.run()
        session.finish()
    except BaseException:
        loop.cut_short()
        raise
    finally:
        session.close()
    if session.ended_by is not None:
        print(f"note: {session.ended_by}", file=sys.stderr)


@contextlib.contextmanager
def _in_flight(ctx: RunContext, session: SearchSession) -> Iterator[InFlight | None]:
    """The run's trials in flight for a ``threaded`` session (stopped, each recorded interrupted, however
    the run ends), None for a session whose tasks train in this thread."""
    if not session.threaded:
        yield None
        return
    from .executors.cluster import trials_in_flight

    with trials_in_flight(ctx.study.name) as in_flight:
        yield in_flight


class _Loop:
    """The loop of one ``drive``: proposes, hands tasks to the runner, settles their results."""

    def __init__(self, ctx: RunContext, session: SearchSession) -> None:
        self.ctx = ctx
        self.session = session
        self.runner = TrialRunner(ctx)
        self.in_flight: InFlight | None = None
        #: Tasks proposed and not yet settled (in flight, or waiting their turn in a batch).
        self.open: list[Task] = []
        #: Tasks the runner has in hand now (their trial may be claimed).
        self.training: set[int] = set()
        self.stop = False

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Propose while the budget and the session allow, keep tasks in flight up to the session's
        width, settle each result; return once nothing is in flight and nothing more may be proposed."""
        tracker = self.ctx.tracker
        while True:
            while not self.stop and self._has_room():
                if tracker.should_stop():
                    self.stop = True
                    break
                tasks = self.session.propose(tracker.remaining())
                if tasks is None:
                    self.stop = True
                    break
                if not tasks:
                    if self._busy():
                        break  # wait for a task in flight to end
                    time.sleep(IDLE_PAUSE_S)
                    continue
                self.open.extend(tasks)
                if self.in_flight is None:
                    self._train_here(tasks)
                else:
                    self._start(tasks)
            if not self._busy():
                return
            assert self.in_flight is not None
            for task, future in self.in_flight.next_done():
                result = future.result()  # re-raises what ends the run (Ctrl-C, the database, the cluster)
                self.training.discard(id(task))
                self._settle(task, result)

    def _has_room(self) -> bool:
        return self.in_flight is None or len(self.in_flight) < max(1, self.session.width)

    def _busy(self) -> bool:
        return self.in_flight is not None and len(self.in_flight) > 0

    # -- one batch of tasks ----------------------------------------------------------------------------
    def _train_here(self, tasks: list[Task]) -> None:
        """Train ``tasks`` in this thread, those sharing a pack key together, in proposal order."""
        for group in _groups(tasks):
            for task in group:
                self.training.add(id(task))
            if len(group) == 1:
                results = [self.runner.run(group[0].proposal, _fit(group[0]))]
            else:
                train_together = group[0].train_together
                assert train_together is not None
                results = self.runner.run_pack(
                    [task.proposal for task in group],
                    lambda attempts, group=group, together=train_together: together(group, attempts),
                )
            for task, result in zip(group, results, strict=True):
                self.training.discard(id(task))
                self._settle(task, result)

    def _start(self, tasks: list[Task]) -> None:
        """Put ``tasks`` in flight, one thread each; each returns once its trial is claimed, so trial
        numbers follow proposal order."""
        assert self.in_flight is not None
        for task in tasks:
            if self.stop:
                self.open.remove(task)
                self.session.abandon(task)
                continue
            self.training.add(id(task))
            self.in_flight.start(task, lambda claimed, task=task: self.runner.run(
                task.proposal, _signalling(claimed, _fit(task))))

    def _settle(self, task: Task, result: RunResult) -> None:
        """Tell the session how ``task`` ended, and what its result means for the loop."""
        self.open.remove(task)
        self.session.learn(task, result)
        if result.status is RunStatus.BUDGET_REACHED:
            # Other workers claimed the rest of the budget: this process stops.
            self.ctx.tracker.budget_reached()
            self.stop = True
        elif result.status is RunStatus.INTERRUPTED and result.trial is not None:
            # A fitting process died under it: its configuration goes again first (until given up).
            self.session.retry([result.trial])

    def cut_short(self) -> None:
        """The run is ending with an error or Ctrl-C: tell the session which tasks were cut short (their
        trials are recorded interrupted by the runner) and which never reached it."""
        for task in self.open:
            try:
                if id(task) in self.training:
                    self.session.interrupt(task)
                else:
                    self.session.abandon(task)
            except Exception:  # noqa: BLE001 - the database may be what failed; resume reconciles the engine
                pass
        self.open.clear()


def _groups(tasks: list[Task]) -> list[list[Task]]:
    """``tasks`` in groups that train together: those sharing a pack key, each retry and each task
    without a key alone; groups in the order of their first task."""
    groups: dict[Hashable, list[Task]] = {}
    for task in tasks:
        alone = task.pack_key is None or task.proposal.retry_of is not None or task.train_together is None
        key: Hashable = ("alone", id(task)) if alone else ("pack", task.pack_key)
        groups.setdefault(key, []).append(task)
    return list(groups.values())


def _fit(task: Task) -> Fit:
    """``task``'s training, or for a retry of a configuration cut short too often, its giving up."""
    if task.proposal.retry_of is None:
        return task.train
    return give_up_or(task.train)


def _signalling(claimed: Any, fit: Fit) -> Fit:
    """``fit`` that first signals ``claimed`` (the trial is claimed: the next proposal may go)."""

    def train(attempt: Attempt) -> TrialOutcome:
        claimed()
        return fit(attempt)

    return train
