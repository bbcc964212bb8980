"""The KerasTuner engine: RandomSearch, Hyperband and BayesianOptimization oracles on the shared space.

KerasTuner's oracle decides what to try; hpsearch trains. A small ``keras_tuner.Tuner`` subclass lets
``Tuner.search`` drive the oracle as usual, but its ``run_trial`` hands each trial (each Hyperband round
included) to the one trial runner, which trains it with the shared builder and records it.

Where the state lives. KerasTuner writes ``oracle.json`` and one ``trial.json`` per trial with plain
``open(..., "w")``: a ``kill -9`` in the middle leaves a truncated file that ``reload`` cannot parse. Here
the oracle writes no files at all. Its state (``Oracle.get_state()`` plus each KerasTuner trial's
values, status and score) is written into the study's settings under ``keras_tuner_state``, in one
database transaction, each time a trial starts and when a run stops. A kill leaves either the old or
the new snapshot, and the one in-flight trial is reconciled with our trial table on the next start:

- our record finished on its own (killed after recording it, before the next snapshot): the oracle is
  told that outcome, the trial is not trained again;
- our record was interrupted and ``resume`` chose it for a retry: the oracle runs the same KerasTuner
  trial again (same values, same Hyperband bracket and round), recorded with ``retry_of``;
- interrupted but already retried once: the oracle marks it failed;
- never recorded (killed before training began): the oracle runs it.

What stays on disk. Random and Bayesian searches keep nothing (a temporary directory KerasTuner insists
on, removed when the run ends). Hyperband keeps, per trial that a later round may continue, one weights
file of its best epoch (KerasTuner's ``SaveBestEpoch`` semantics, held in memory and written once at the
end of the trial, atomically), under ``hpsearch-keras-tuner/<database>/<study>/`` next to the SQLite
file (the working directory for other databases). A file is deleted as soon as no round can continue it,
and the folder when none is left, so at most one round's worth of weights files exists at a time.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.spaces import DEFAULTS, SearchSpace, resolve_config
from hpsearch.storage import TrialRecord, TrialState

from ...errors import SearchFailedError, UsageError
from ...runtime.backends import check_backend, describe_backend, study_backend
from ...training.fit import describe_error
from ...training.recorder import current_worker
from ...training.runner import Attempt, Proposal, RunStatus, TrialOutcome, TrialRunner
from ...training.work_files import (
    STUDY_FILE,
    claim_work_folder,
    matching_weights,
    remove_empty_folders,
    set_aside,
    stamp_work_folder,
    study_stamp,
    study_work_folder,
    unusable_weights,
    write_durably,
)
from ..base import Engine, RunContext

#: Study settings key holding the oracle's snapshot.
STATE_KEY = "keras_tuner_state"
STATE_VERSION = 1
#: Key of the Bayesian oracle's NumPy random state inside the snapshot's oracle state.
RANDOM_STATE_KEY = "hp_random_state"
DEFAULT_FACTOR = 3
#: Folder (next to the SQLite file) holding Hyperband's weights between rounds.
WORK_FOLDER = "hpsearch-keras-tuner"
#: The best epoch's weights as numbered arrays (``Model.get_weights`` order); no optimizer state, as
#: KerasTuner's continued rounds start a fresh optimizer too.
CHECKPOINT = "best-weights.npz"
#: Create-trial calls the oracle may answer IDLE in a row before the search is declared stuck.
MAX_IDLE = 100


# -- the Hyperband plan -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HyperbandRound:
    """One round of one bracket: ``configs`` models trained from ``initial_epoch`` to ``epochs``."""

    bracket: int
    round: int
    configs: int
    epochs: int
    initial_epoch: int

    @property
    def trained(self) -> int:
        """Epochs each model trains in this round (a continued model resumes at ``initial_epoch``)."""
        return self.epochs - self.initial_epoch


def hyperband_plan(max_epochs: int, factor: int) -> list[list[HyperbandRound]]:
    """KerasTuner's Hyperband brackets for one iteration, most exploratory bracket first.

    The same arithmetic as ``keras_tuner.oracles.HyperbandOracle`` (``_get_num_brackets``,
    ``_get_size``, ``_get_epochs``), without importing KerasTuner, so ``--dry-run`` stays fast.
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    last_round_size = math.ceil(1 + math.log(max_epochs, factor))

    def size(bracket: int, round_num: int) -> int:
        return math.ceil(last_round_size / (bracket + 1) * factor ** (bracket - round_num))

    def epochs_at(bracket: int, round_num: int) -> int:
        return math.ceil(max_epochs / factor ** (bracket - round_num))

    return [
        [
            HyperbandRound(
                bracket=bracket,
                round=round_num,
                configs=size(bracket, round_num),
                epochs=epochs_at(bracket, round_num),
                initial_epoch=epochs_at(bracket, round_num - 1) if round_num else 0,
            )
            for round_num in range(bracket + 1)
        ]
        for bracket in range(brackets - 1, -1, -1)
    ]


def plan_trials(plan: list[list[HyperbandRound]]) -> int:
    return sum(round_.configs for bracket in plan for round_ in bracket)


def plan_epochs(plan: list[list[HyperbandRound]]) -> int:
    return sum(round_.configs * round_.trained for bracket in plan for round_ in bracket)


def space_epochs(space: SearchSpace) -> int:
    """The epochs a configuration of the space trains: Hyperband's default ``max_epochs``."""
    return int(space.fixed.get("epochs", DEFAULTS["epochs"]))


# -- the engine ---------------------------------------------------------------------------------------
class KerasTunerEngine(Engine):
    name = "keras-tuner"
    algorithms = ("random", "hyperband", "bayesian")
    default_algorithm = "random"
    options = ("max_epochs", "factor", "dask", "backend")
    #: The options of Hyperband's plan (refused with other algorithms).
    hyperband_options = ("max_epochs", "factor")

    def _hyperband_settings(self, space: SearchSpace, settings: Mapping[str, Any]) -> tuple[int, int]:
        max_epochs = settings.get("max_epochs")
        max_epochs = space_epochs(space) if max_epochs is None else int(max_epochs)
        factor = settings.get("factor")
        factor = DEFAULT_FACTOR if factor is None else int(factor)
        if max_epochs < 1:
            raise UsageError(f"--max-epochs must be at least 1, but got {max_epochs}")
        if factor < 2:
            raise UsageError(f"--factor must be at least 2, but got {factor}")
        return max_epochs, factor

    def check(self, space: SearchSpace, settings: Mapping[str, Any]) -> None:
        from ...executors.cluster import check_address

        check_address(settings.get("dask"))
        check_backend(settings)
        algorithm = settings["algorithm"]
        if algorithm != "hyperband":
            given = [key for key in self.hyperband_options if settings.get(key) is not None]
            if given:
                flags = " and ".join("--" + key.replace("_", "-") for key in given)
                raise UsageError(f"{flags} apply to --algorithm hyperband only, not '{algorithm}'; "
                                 f"the trial budget of {algorithm} search is --trials")
            return
        self._hyperband_settings(space, settings)
        if "epochs" in space.params:
            raise UsageError(
                f"space {space.source} tunes 'epochs', but Hyperband decides how long each model trains; "
                "fix epochs in the space (it is the default --max-epochs) or use --algorithm random"
            )

    def resolved_options(self, space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
        backend = study_backend(settings)
        if settings["algorithm"] != "hyperband":
            return {"max_epochs": None, "factor": None, "backend": backend}
        max_epochs, factor = self._hyperband_settings(space, settings)
        return {"max_epochs": max_epochs, "factor": factor, "backend": backend}

    def planned_trials(self, space: SearchSpace, settings: Mapping[str, Any]) -> int | None:
        """The trial budget when ``--trials`` is not given: one full Hyperband iteration."""
        if settings["algorithm"] != "hyperband":
            return None
        return plan_trials(hyperband_plan(*self._hyperband_settings(space, settings)))

    def short_plan_reason(self, space: SearchSpace, settings: Mapping[str, Any], spent: int) -> str:
        if settings["algorithm"] != "hyperband":
            return "the oracle found no configuration it had not tried yet"
        planned = self.planned_trials(space, settings)
        if planned is not None and spent >= planned:
            return f"one Hyperband iteration is {planned} trials"
        # KerasTuner's rule in HyperbandOracle.populate_space, which collect_weights mirrors.
        return ("KerasTuner promotes a round's best only while its completed, unpromoted trials outnumber "
                "those the next round leaves out, so a round with failed trials promotes fewer than planned")

    def describe(self, space: SearchSpace, settings: Mapping[str, Any]) -> list[str]:
        from ...executors.cluster import dask_address, describe

        algorithm = settings["algorithm"]
        lines = [f"{len(space.params)} tuned parameters: {', '.join(space.params) or '(none)'}",
                 describe_backend(settings)]
        address = dask_address(settings)
        if address is not None:
            lines.append(f"{describe(address)}: each trial a task, as many at once as the cluster has worker "
                         "threads; the oracle stays in this run")
        if algorithm != "hyperband":
            oracle = "RandomSearchOracle" if algorithm == "random" else "BayesianOptimizationOracle"
            return [f"engine keras-tuner, algorithm {algorithm} ({oracle}); nothing kept on disk", *lines]
        max_epochs, factor = self._hyperband_settings(space, settings)
        plan = hyperband_plan(max_epochs, factor)
        lines.insert(0, f"engine keras-tuner, algorithm hyperband: max epochs {max_epochs}, factor {factor}")
        lines.append(f"hyperband plan: {len(plan)} brackets, {plan_trials(plan)} trials, "
                     f"{plan_epochs(plan)} epochs in all")
        for bracket in plan:
            for round_ in bracket:
                continued = f", continuing epoch {round_.initial_epoch}" if round_.initial_epoch else ""
                lines.append(
                    f"  bracket {round_.bracket} round {round_.round}: {round_.configs} configs x "
                    f"{round_.trained} epochs (to epoch {round_.epochs}{continued})"
                )
        return lines

    def copy_identity(self, space: SearchSpace, settings: Mapping[str, Any], point: Mapping[str, Any]) -> Any:
        if settings["algorithm"] == "hyperband":
            return dict(point)  # a round's identity holds its bracket and round: no copy is one
        from hpsearch.spaces.compile_keras_tuner import hyperparameter_values

        # As ``plan_trial`` identifies a random or Bayesian trial: its values as the oracle holds them.
        return {"values": hyperparameter_values(space, dict(point))}

    def warm_start_note(self, settings: Mapping[str, Any], copied: int) -> str:
        algorithm = settings["algorithm"]
        if algorithm == "hyperband":
            return (f"warm start: KerasTuner's Hyperband draws each bracket's configurations itself and does "
                    f"not learn from the {copied} copied trial(s); they rank with the study's own trials")
        learns = ("records their values as tried, so it does not propose them again" if algorithm == "random"
                  else "fits its Gaussian process to them before proposing")
        return (f"warm start: KerasTuner's {algorithm} oracle takes the {copied} copied trial(s) as its "
                f"history and {learns}")

    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:
        """Nothing to do here: the next ``run`` reconciles the oracle's snapshot with our trial table,
        which covers trials failed by ``resume`` or by the supervisor alike."""

    def run(self, ctx: RunContext) -> None:
        others = [trial for trial in ctx.storage.running_trials(ctx.study.id)
                  if trial.worker != current_worker()]
        if others:
            raise UsageError(
                f"study '{ctx.study.name}' is being searched by worker {others[0].worker} (trial "
                f"#{others[0].number} is running); the keras-tuner engine runs one worker per study"
            )
        from ...executors.cluster import dask_address

        address = dask_address(ctx.settings)
        if address is None:
            _Search(ctx).run()
        else:
            from .cluster import ClusterSearch

            ClusterSearch(ctx, address).run()


# -- one run of the search ----------------------------------------------------------------------------
class _StopSearch(Exception):
    """Raised before the oracle creates a trial, when the shared budget says stop."""


def _plain(value: Any) -> Any:
    """JSON for numpy scalars that KerasTuner leaves in values and scores."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the oracle snapshot")


def hyperband_folder(ctx: RunContext) -> Path:
    """``hpsearch-keras-tuner/<database>/<study>`` next to the database (see ``study_work_folder``)."""
    return study_work_folder(ctx.storage.url, WORK_FOLDER, ctx.study.name)


class _Search:
    """Builds the oracle (restored from the last snapshot), runs ``Tuner.search``, keeps the snapshot."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.algorithm = ctx.settings["algorithm"]
        self.objective = ctx.study.objective
        self.direction = ctx.study.direction
        self.folder: Path | None = hyperband_folder(ctx) if self.algorithm == "hyperband" else None
        #: Whose the weights folder is: a folder of another study (one created again under this name
        #: after its database was deleted) or of other data is set aside, never continued.
        self.stamp = {"study": study_stamp(ctx.study), "data": ctx.dataset.fingerprint}
        #: KerasTuner trial id -> number of our latest record of it that ended on its own.
        self.numbers: dict[str, int] = {}
        #: KerasTuner trial id -> number of the interrupted trial its next run retries.
        self.retry_of: dict[str, int] = {}
        self.idle = 0
        self.oracle: Any = None
        self.runner = TrialRunner(ctx)

    # -- oracle ------------------------------------------------------------------------------------
    def _new_oracle(self) -> Any:
        import keras_tuner
        from hpsearch.spaces.compile_keras_tuner import declare_hyperparameters

        base = {
            "random": keras_tuner.oracles.RandomSearchOracle,
            "bayesian": keras_tuner.oracles.BayesianOptimizationOracle,
            "hyperband": keras_tuner.oracles.HyperbandOracle,
        }[self.algorithm]
        options: dict[str, Any] = {
            "objective": keras_tuner.Objective(
                self.objective, direction="min" if self.direction == "minimize" else "max"
            ),
            # The space is declared in full up front: no entry may appear during the search.
            "hyperparameters": declare_hyperparameters(self.ctx.space),
            "allow_new_entries": False,
            "tune_new_entries": False,
            # KerasTuner takes seed 0 as "no seed"; +1 keeps --seed 0 reproducible.
            "seed": self.ctx.seed + 1,
            "max_consecutive_failed_trials": self.ctx.tracker.budget.max_consecutive_failures,
        }
        if self.algorithm == "hyperband":
            max_epochs, factor = KerasTunerEngine()._hyperband_settings(self.ctx.space, self.ctx.settings)
            options.update(max_epochs=max_epochs, factor=factor, hyperband_iterations=1)
        else:
            # The shared BudgetTracker counts trials (retries and all); the oracle proposes until told.
            options["max_trials"] = None
        oracle = _database_backed(base)(**options)
        oracle.verbose = 0
        return oracle

    def _snapshot(self) -> dict[str, Any]:
        trials = {
            trial_id: {
                "values": trial.hyperparameters.values,
                "status": trial.status,
                "score": trial.score,
                "best_step": trial.best_step,
            }
            for trial_id, trial in self.oracle.trials.items()
        }
        state = {"version": STATE_VERSION, "oracle": self.oracle.get_state(), "trials": trials}
        return json.loads(json.dumps(state, default=_plain))

    def save(self) -> None:
        """One transaction: a kill leaves the previous snapshot or this one, never half of one."""
        self.ctx.storage.update_study_settings(self.ctx.study.id, {STATE_KEY: self._snapshot()})

    def _restore(self, snapshot: Mapping[str, Any]) -> None:
        from keras_tuner.engine.trial import Trial

        oracle = self.oracle
        for trial_id, saved in snapshot["trials"].items():
            hyperparameters = oracle.hyperparameters.copy()
            hyperparameters.values = dict(saved["values"])
            trial = Trial(hyperparameters, trial_id=trial_id, status=saved["status"])
            trial.score = saved["score"]
            trial.best_step = saved["best_step"]
            oracle.trials[trial_id] = trial
        oracle.set_state(snapshot["oracle"])

    def _reconcile(self, trials: list[TrialRecord]) -> None:
        """Settle the trial(s) the snapshot still shows running with what our table recorded."""
        oracle = self.oracle
        latest: dict[str, TrialRecord] = {}
        for record in trials:
            if record.engine_trial_id is not None:
                latest[record.engine_trial_id] = record  # trials come in number order
        retry = {record.number for record in self.ctx.retries}
        # Trials the oracle started but never ended: running when the snapshot was taken, or queued to
        # run again by an earlier reconciliation that a budget stop left unconsumed.
        unsettled = [oracle.trials[trial_id] for trial_id in oracle._retry_queue]
        unsettled += [trial for trial in oracle.ongoing_trials.values() if trial not in unsettled]
        oracle._retry_queue = []
        oracle.ongoing_trials = {}
        for trial in unsettled:
            record = latest.get(trial.trial_id)
            if record is None or (record.interrupted and record.number in retry):
                # Never trained, or interrupted and due its one retry: the oracle runs it again first.
                if record is not None:
                    self.retry_of[trial.trial_id] = record.number
                trial.status = "INVALID"  # not RUNNING: no oracle may score a trial nobody runs
                oracle._retry_queue.append(trial.trial_id)
            else:
                # Finished on its own (the kill came before the next snapshot), or already retried once.
                if record.state is TrialState.COMPLETE and record.value is not None:
                    oracle.update_trial(trial.trial_id, {self.objective: record.value},
                                        step=max(record.epochs_run - 1, 0))
                    trial.status = "COMPLETED"
                else:
                    trial.status = "FAILED"
                    trial.message = record.error
                oracle.end_trial(trial)
        oracle.ongoing_trials = {}

    def _prepare(self) -> None:
        self.oracle = self._new_oracle()
        trials = self.ctx.storage.list_trials(self.ctx.study.id)
        for record in trials:
            if record.engine_trial_id is not None and record.state.is_finished() and not record.interrupted:
                self.numbers[record.engine_trial_id] = record.number
        snapshot = self.ctx.storage.get_study(self.ctx.study.name).settings.get(STATE_KEY)
        if snapshot:
            if snapshot.get("version") != STATE_VERSION:
                raise SearchFailedError(
                    f"study '{self.ctx.study.name}' keeps KerasTuner state version "
                    f"{snapshot.get('version')}, but this hpsearch reads version {STATE_VERSION}"
                )
            self._restore(snapshot)
            self._reconcile(trials)
        elif self.algorithm != "hyperband" and self.ctx.settings.get("warm_start"):
            # The first run of a warm-started study: the copies become the oracle's history, kept from
            # then on in its snapshot (so this happens once).
            self._seed_history([record for record in trials if record.copied])

    def _seed_history(self, copies: list[TrialRecord]) -> None:
        """End one oracle trial per ``--warm-start`` copy with its score, as if the oracle had run it: the
        random oracle does not propose its values again, the Bayesian one fits its Gaussian process to it.
        """
        from hpsearch.spaces.compile_keras_tuner import hyperparameter_values
        from keras_tuner.engine.trial import Trial

        oracle = self.oracle
        for record in copies:
            if record.value is None:
                continue
            hyperparameters = oracle.hyperparameters.copy()
            hyperparameters.values = hyperparameter_values(self.ctx.space, record.params)
            # KerasTuner's own id scheme (the trial count, padded), so the trials it creates next follow on.
            trial_id = f"{{:0{len(str(oracle.max_trials))}d}}".format(len(oracle.trials))
            trial = Trial(hyperparameters, trial_id=trial_id, status="RUNNING")
            oracle.trials[trial_id] = trial
            oracle.start_order.append(trial_id)
            oracle._record_values(trial)
            oracle.update_trial(trial_id, {self.objective: record.value}, step=max(record.epochs_run - 1, 0))
            trial.status = "COMPLETED"
            oracle.end_trial(trial)

    # -- the search --------------------------------------------------------------------------------
    @contextmanager
    def _directory(self) -> Iterator[Path]:
        if self.folder is None:
            # KerasTuner insists on a project directory; random and Bayesian searches write nothing to it.
            with tempfile.TemporaryDirectory(prefix="hpsearch-keras-tuner-") as folder:
                yield Path(folder)
            return
        claim_work_folder(self.folder, self.stamp, "KerasTuner weights folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp_work_folder(self.folder, self.stamp)
        yield self.folder.parent

    def run(self) -> None:
        import keras_tuner

        self._prepare()
        tuner_class = _tuner_class()
        with self._directory() as directory:
            tuner = tuner_class(self, self.oracle, directory=str(directory),
                                project_name=self.folder.name if self.folder else "search")
            try:
                tuner.search(verbose=0)
            except _StopSearch:
                pass
            except keras_tuner.errors.FatalError as error:
                # Our own bookkeeping failed (the database, most likely): that one error, not KerasTuner's.
                # A budget stop raised while a trial was claimed arrives the same way.
                if not isinstance(error.__cause__, _StopSearch):
                    if error.__cause__ is not None:
                        raise error.__cause__ from None
                    raise
            self.save()
            self.collect_weights()

    def before_trial(self) -> None:
        if self.ctx.tracker.should_stop():
            raise _StopSearch
        self.idle += 1
        if self.idle > MAX_IDLE:
            raise SearchFailedError("KerasTuner's oracle kept waiting for a trial that no worker runs")

    def trial_began(self, trial: Any) -> None:
        self.idle = 0
        # Before training starts: every trial we record is in the snapshot, so resume can find it.
        self.save()

    def trial_ended(self, trial: Any) -> None:
        self.collect_weights()

    # -- Hyperband weights -------------------------------------------------------------------------
    def _weights(self, trial_id: str) -> Path:
        assert self.folder is not None
        return self.folder / f"trial_{trial_id}" / CHECKPOINT

    def collect_weights(self) -> None:
        """Delete weights no round can continue any more; the folder goes with the last of them."""
        if self.folder is None or not self.folder.exists():
            return
        oracle = self.oracle

        def status(trial_id: str) -> str:
            trial = oracle.trials.get(trial_id)
            return "RUNNING" if trial is None else trial.status

        needed: set[str] = set()
        for bracket in oracle._brackets:
            rounds, bracket_num = bracket["rounds"], bracket["bracket_num"]
            # Whether trials can still enter the round: new random ones in round 0, promotions later.
            can_grow = True
            for round_num in range(len(rounds) - 1):
                next_round = rounds[round_num + 1]
                promoted = {info["past_id"] for info in next_round}
                size = oracle._get_size(bracket_num, round_num + 1)
                past_size = oracle._get_size(bracket_num, round_num)
                # KerasTuner promotes while the round's completed, unpromoted trials outnumber those the
                # next round leaves out; so after a failed trial the last promotions may never come (and
                # the bracket never ends). Trials that may still complete: all but the failed ones (INVALID
                # here marks a trial queued to run again, see _reconcile), and those not proposed yet.
                pending = sum(1 for info in rounds[round_num]
                              if info["id"] not in promoted and status(info["id"]) != "FAILED")
                if can_grow:
                    pending += past_size - len(rounds[round_num])
                can_grow = len(next_round) < size and pending > past_size - size  # into the next round
                if can_grow:  # promotions left: every unpromoted candidate may still be chosen
                    needed |= {
                        info["id"] for info in rounds[round_num]
                        if info["id"] not in promoted
                        and status(info["id"]) in ("RUNNING", "COMPLETED")
                    }
                for info in next_round:  # a continuation not yet done may need its parent again (retry)
                    if status(info["id"]) not in ("COMPLETED", "FAILED"):
                        needed.add(info["past_id"])
        for path in self.folder.glob("trial_*"):
            if path.name.removeprefix("trial_") not in needed:
                shutil.rmtree(path, ignore_errors=True)
        if all(entry.name == STUDY_FILE for entry in self.folder.iterdir()):  # whose it was: no matter now
            shutil.rmtree(self.folder, ignore_errors=True)
            # Then the database's folder and hpsearch-keras-tuner/, when no other study keeps weights there.
            remove_empty_folders(self.folder.parent, stop_at=self.folder.parents[2])

    # -- one trial ---------------------------------------------------------------------------------
    def train(self, trial: Any) -> float:
        """Train one KerasTuner trial through the trial runner; return its objective value."""
        import keras_tuner

        plan = self.plan_trial(trial)
        result = self.runner.run(plan.proposal, self.fit_function(plan))
        if result.status is RunStatus.BUDGET_REACHED:
            self.ctx.tracker.budget_reached()
            raise _StopSearch
        if result.status is not RunStatus.FINISHED:
            raise keras_tuner.errors.FailedTrialError(f"not trained: {result.status.value}")
        record = result.trial
        assert record is not None
        if record.state is not TrialState.COMPLETE or record.value is None:
            raise keras_tuner.errors.FailedTrialError(record.error or "failed")
        self.numbers[trial.trial_id] = record.number
        return record.value

    def plan_trial(self, trial: Any) -> TrialPlan:
        """What training ``trial`` means: config, epochs, the weights it continues, the weights it keeps."""
        from hpsearch.spaces.compile_keras_tuner import point_from_hyperparameters

        ctx = self.ctx
        values = trial.hyperparameters.values
        point = point_from_hyperparameters(ctx.space, trial.hyperparameters)
        epochs = values.get("tuner/epochs")
        initial_epoch = int(values.get("tuner/initial_epoch", 0)) if epochs is not None else 0
        parent_id = values.get("tuner/trial_id")
        parent_weights = self._weights(parent_id) if parent_id is not None else None
        if parent_weights is not None and not parent_weights.exists():
            # The weights folder was removed (or the study moved machines): train this round from scratch.
            parent_id, parent_weights, initial_epoch = None, None, 0
        elif parent_weights is not None and (why := unusable_weights(parent_weights)) is not None:
            set_aside(parent_weights, "KerasTuner weights file", why,
                      "this round trains from its first epoch")
            parent_id, parent_weights, initial_epoch = None, None, 0
        bracket, round_num = values.get("tuner/bracket"), values.get("tuner/round")
        keep = self.folder is not None and bracket is not None and round_num < bracket
        proposal = Proposal(
            point,
            engine_trial_id=trial.trial_id,
            retry_of=self.retry_of.pop(trial.trial_id, None),
            parent_number=self.numbers.get(parent_id) if parent_id is not None else None,
            # A Hyperband round is its own work: the same configuration continued is not a duplicate.
            identity={"values": values},
        )
        return TrialPlan(
            proposal=proposal, config=resolve_config(ctx.space, point),
            epochs=None if epochs is None else int(epochs), initial_epoch=initial_epoch,
            parent_weights=parent_weights, keep_weights=self._weights(trial.trial_id) if keep else None,
        )

    def fit_function(self, plan: TrialPlan) -> Any:
        """Training as the trial runner calls it: here, in this process."""
        callbacks = []
        if plan.keep_weights is not None:
            callbacks.append(_best_weights_keeper(self.objective, self.direction, plan.keep_weights))

        def load_parent(model: Any) -> None:
            if plan.parent_weights is not None:
                weights = _load_weights(plan.parent_weights)
                model.set_weights(matching_weights(weights, model, plan.parent_weights))

        def fit(attempt: Attempt) -> TrialOutcome:
            # Epochs are counted within this round, so epochs_run is what this round cost.
            result = attempt.fit(
                plan.config, callbacks=callbacks, epochs=plan.epochs, initial_epoch=plan.initial_epoch,
                epoch_offset=plan.initial_epoch, prepare_model=load_parent,
            )
            return attempt.outcome(result)

        return fit


@dataclass(frozen=True)
class TrialPlan:
    """One KerasTuner trial (one Hyperband round) as the trial runner trains it."""

    proposal: Proposal
    config: dict[str, Any]
    epochs: int | None
    initial_epoch: int
    #: Best-epoch weights of the round this one continues.
    parent_weights: Path | None
    #: Where to keep this round's best-epoch weights, when a later round may continue it.
    keep_weights: Path | None


def _database_backed(base: type) -> type:
    """``base`` oracle whose state goes into our database (see the module docstring), not into files."""

    class DatabaseBackedOracle(base):  # type: ignore[misc, valid-type]
        def save(self) -> None:
            """No ``oracle.json``: the engine snapshots the state into the study in one transaction."""

        def _save_trial(self, trial: Any) -> None:
            """No ``trial.json`` either: the snapshot holds every trial."""

        def reload(self) -> None:
            """Restored from the snapshot by the engine, never from files."""

        def _check_consecutive_failures(self) -> None:
            # The limit is the same (--max-failures), counted by the shared BudgetTracker, which stops the
            # search before the next trial and ends it with hpsearch's one message instead of a
            # RuntimeError from inside ``end_trial``.
            return

        def get_state(self) -> dict[str, Any]:
            # The Bayesian oracle draws the starting points of its acquisition search from a NumPy random
            # state that KerasTuner's own state leaves out (it restarts from the seed on reload); kept
            # here, a resumed search proposes what the uninterrupted one would have.
            state = super().get_state()
            random_state = getattr(self, "_random_state", None)
            if random_state is not None:
                kind, keys, position, has_gauss, cached = random_state.get_state()
                state[RANDOM_STATE_KEY] = [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]
            return state

        def set_state(self, state: Mapping[str, Any]) -> None:
            super().set_state(state)
            saved = state.get(RANDOM_STATE_KEY)
            random_state = getattr(self, "_random_state", None)
            if saved is not None and random_state is not None:
                import numpy

                kind, keys, position, has_gauss, cached = saved
                random_state.set_state((kind, numpy.array(keys, dtype=numpy.uint32), position, has_gauss,
                                        cached))

    DatabaseBackedOracle.__name__ = DatabaseBackedOracle.__qualname__ = f"DatabaseBacked{base.__name__}"
    return DatabaseBackedOracle


def _tuner_class() -> type:
    """A ``keras_tuner.Tuner`` training through the engine; built lazily so importing this module does not
    import KerasTuner (nor TensorFlow)."""
    import keras_tuner
    from keras_tuner.src import config as keras_tuner_config

    # KerasTuner prints the traceback of every failed trial to stderr (its DEBUG flag is on by default).
    # The trial runner has already recorded and reported the reason ("loss became nan at epoch 2"); the
    # traceback would only show where run_trial raised it again.
    keras_tuner_config.DEBUG = False

    class Abort(keras_tuner.errors.FatalError):
        """Our own bookkeeping failed: KerasTuner must not take it for one failed trial."""

    class SearchTuner(keras_tuner.Tuner):
        def __init__(self, search: _Search, oracle: Any, **kwargs: Any) -> None:
            self._search = search
            super().__init__(oracle=oracle, overwrite=False, **kwargs)

        def pre_create_trial(self) -> None:
            self._search.before_trial()

        def on_trial_begin(self, trial: Any) -> None:
            self._search.trial_began(trial)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
            try:
                return self._search.train(trial)
            except keras_tuner.errors.FailedTrialError:
                raise
            except Exception as error:
                raise Abort(describe_error(error)) from error

        def on_trial_end(self, trial: Any) -> None:
            self.oracle.end_trial(trial)
            self._search.trial_ended(trial)

        def save(self) -> None:
            """State lives in the database (``_Search.save``); no ``tuner0.json``."""

        def reload(self) -> None:
            """Never reloaded from files."""

    return SearchTuner


def _best_weights_keeper(objective: str, direction: str, path: Path) -> Any:
    """Keeps the best epoch's weights in memory and writes them once, atomically, when training ends.

    KerasTuner's ``SaveBestEpoch`` writes a checkpoint at every improving epoch; one write per trial
    keeps its meaning (the next round continues from the best epoch) at a fraction of the disk traffic.
    """
    import keras
    import numpy

    class BestWeights(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: float | None = None
            self.weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            value = (logs or {}).get(objective)
            if value is None or not math.isfinite(float(value)):
                return
            value = float(value)
            if self.best is None or (value < self.best if direction == "minimize" else value > self.best):
                self.best, self.weights = value, self.model.get_weights()

        # A round continued from a checkpoint (hpsearch.training.checkpoints) keeps its best epoch so far.
        def checkpoint_state(self) -> tuple[dict[str, Any], list[Any]]:
            return {"best": self.best}, list(self.weights or [])

        def check_checkpoint_state(self, state: Any, arrays: list[Any]) -> str | None:
            """Why a checkpoint's state cannot be this callback's (None: it can); called before any
            restore, so a foreign or damaged checkpoint is set aside whole."""
            best = state.get("best") if isinstance(state, dict) else math.nan
            if best is not None and (not isinstance(best, int | float) or not math.isfinite(best)):
                return f"holds a malformed best value {best!r} of the round's best weights"
            wanted = [tuple(array.shape) for array in self.model.get_weights()]
            if arrays and [tuple(array.shape) for array in arrays] != wanted:
                return "holds best weights of another shape than this round's model"
            return None

        def restore_checkpoint_state(self, state: Mapping[str, Any], arrays: list[Any]) -> None:
            self.best, self.weights = state["best"], (arrays or None)

        def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
            if self.weights is None:
                return
            weights = self.weights
            # Flushed and moved into place: a kill or power cut leaves the old file or the new one.
            write_durably(path, lambda file: numpy.savez(file, *weights))

    return BestWeights()


def _load_weights(path: Any) -> list[Any]:
    """The arrays of a ``best-weights.npz`` (a path or an open binary file), in ``get_weights`` order.

    Raises whatever NumPy raises for a damaged file (see ``hpsearch.training.work_files.unusable_weights``);
    never
    unpickles.
    """
    import numpy

    with numpy.load(path, allow_pickle=False) as arrays:
        return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]

