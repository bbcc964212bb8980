"""Hyperband's weights kept on disk between rounds.

Random and Bayesian searches keep nothing (a temporary directory KerasTuner insists on, removed when the
run ends). Hyperband keeps, per trial that a later round may continue, one weights file of its best epoch
(KerasTuner's ``SaveBestEpoch`` semantics, held in memory and written once at the end of the trial,
atomically), under ``hpsearch-keras-tuner/<database>/<study>/`` next to the SQLite file (the working
directory for other databases). The folder's ``study.json`` says whose it is: a folder of another study
or of other data is set aside, never continued, and so is a damaged weights file. A file is deleted as
soon as no round can continue it, and the folder when none is left, so at most one round's worth of
weights files exists at a time.

The callback that keeps a round's best epoch and the reader of its file are training code
(:mod:`hpsearch.training.weights_files`), since a round may train on a Dask worker.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...training.work_files import (
    STUDY_FILE,
    claim_work_folder,
    remove_empty_folders,
    set_aside,
    stamp_work_folder,
    study_stamp,
    study_work_folder,
    unusable_weights,
)

if TYPE_CHECKING:
    from ...training.context import RunContext

#: Folder (next to the SQLite file) holding Hyperband's weights between rounds.
WORK_FOLDER = "hpsearch-keras-tuner"
#: The best epoch's weights as numbered arrays (``Model.get_weights`` order); no optimizer state, as
#: KerasTuner's continued rounds start a fresh optimizer too.
CHECKPOINT = "best-weights.npz"


def hyperband_folder(ctx: RunContext) -> Path:
    """``hpsearch-keras-tuner/<database>/<study>`` next to the database (see ``study_work_folder``)."""
    return study_work_folder(ctx.storage.url, WORK_FOLDER, ctx.study.name)


class HyperbandWeights:
    """One study's Hyperband weights folder: whose it is, each trial's best-weights file, when they go.

    Args:
        ctx: the run; its study and data are what the folder is stamped with.
    """

    def __init__(self, ctx: RunContext) -> None:
        self.folder = hyperband_folder(ctx)
        #: Whose the weights folder is: a folder of another study (one created again under this name
        #: after its database was deleted) or of other data is set aside, never continued.
        self.stamp = {"study": study_stamp(ctx.study), "data": ctx.dataset.fingerprint}

    def claim(self) -> None:
        """Make the folder this study's: one stamped for another study or other data is set aside first."""
        claim_work_folder(self.folder, self.stamp, "KerasTuner weights folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp_work_folder(self.folder, self.stamp)

    def path(self, trial_id: str) -> Path:
        """Where KerasTuner trial ``trial_id`` keeps its best epoch's weights."""
        return self.folder / f"trial_{trial_id}" / CHECKPOINT

    def usable(self, trial_id: str) -> Path | None:
        """The weights of ``trial_id`` that a later round continues; None when it must train from scratch.

        A missing file (the folder was removed, or the study moved machines) is None; so is a damaged
        one, which is set aside with a warning.
        """
        weights = self.path(trial_id)
        if not weights.exists():
            return None
        why = unusable_weights(weights)
        if why is not None:
            set_aside(weights, "KerasTuner weights file", why, "this round trains from its first epoch")
            return None
        return weights

    def collect(self, oracle: Any) -> None:
        """Delete weights no round of ``oracle`` (a Hyperband oracle) can continue any more; the folder
        goes with the last of them."""
        if not self.folder.exists():
            return

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
                # here marks a trial queued to run again, see oracle.reconcile), and those not proposed yet.
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
