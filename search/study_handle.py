"""``hpsearch.Study``: one study of a trial store, seen from Python.

Every attribute reads the store when asked (so a study that workers or another process are still running
shows its latest trials), through the functions the CLI's commands use: ``best_trials`` and
``list_trials`` (``hpsearch best``, ``trials``), ``compare_studies`` (``compare``), ``retrain_study``
(``retrain``), ``study_figures`` (``plot``) and ``resume_study`` (``resume``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.storage import Storage, StudyRecord, TrialRecord, open_storage

from .errors import UsageError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Retrained:
    """What [`Study.retrain`][hpsearch.Study.retrain] returns: the exported model, its card and where both
    were written.

    Unpacks as ``model, card = study.retrain()``.

    Attributes:
        model: the exported Keras model (preprocessing inside: it takes raw feature columns).
        card: the model card (``model.json``): config, data, input and output format, test metrics.
        path: the ``.keras`` file; ``hpsearch predict PATH DATA.csv`` predicts with it.
    """

    model: Any
    card: dict[str, Any]
    path: Path

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.card))

    def predict(self, data: pd.DataFrame | str | os.PathLike[str]) -> pd.DataFrame:
        """Predict rows as ``hpsearch predict`` does: class label and per-class probabilities, or the value.

        Args:
            data: a DataFrame or CSV file holding the model's feature columns (others are ignored).

        Returns:
            One prediction row per input row.

        Raises:
            DataError: a feature column is missing or holds values of the wrong kind.
        """
        from .results.export import predict_rows, read_rows

        if isinstance(data, str | os.PathLike):
            return predict_rows(self.model, self.path, self.card, read_rows(data, self.card), os.fspath(data))
        return predict_rows(self.model, self.path, self.card, data, "the DataFrame")


class Study:
    """A study in a trial store: its trials, best configuration, curves, and what can be done with it.

    Made by [`hpsearch.run`][hpsearch.run] or [`hpsearch.load_study`][hpsearch.load_study]; the same study
    the CLI lists, resumes and retrains.

    Attributes:
        name: the study's unique name.
        storage: the store's URL or SQLite path.
    """

    def __init__(self, name: str, storage: str, *, progress: bool = True) -> None:
        """The study ``name`` of ``storage``, as [`hpsearch.load_study`][hpsearch.load_study] opens it.

        Args:
            name: the study's name.
            storage: SQLAlchemy URL or SQLite file path.
            progress: the default of ``progress`` for [`resume`][hpsearch.Study.resume] and
                [`retrain`][hpsearch.Study.retrain].
        """
        self.name = name
        self.storage = storage
        self._progress = progress
        self._store: Storage | None = None

    # -- reading ------------------------------------------------------------------------------------
    def _open(self) -> Storage:
        if self._store is None:
            self._store = open_storage(self.storage, create=False)
        return self._store

    @property
    def record(self) -> StudyRecord:
        """The study as stored: engine, algorithm, objective, direction, space, data, settings."""
        return self._open().get_study(self.name)

    @property
    def objective(self) -> str:
        """The metric the study optimises (``val_accuracy``, ``val_loss``, ...)."""
        return self.record.objective

    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize``."""
        return self.record.direction

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial, by number, as frozen records (state, params, value, metrics, duration, ...)."""
        return self._open().list_trials(self.record.id, with_epochs=False)

    @property
    def best_trial(self) -> TrialRecord:
        """The best completed trial (what ``hpsearch best`` shows).

        Raises:
            NoResultError: no trial has completed yet.
        """
        from .results.queries import best_trials

        store = self._open()
        return best_trials(store, store.get_study(self.name), 1)[0]

    @property
    def best_params(self) -> dict[str, Any]:
        """The tuned values of the best trial."""
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        """The objective value of the best trial."""
        value = self.best_trial.value
        assert value is not None  # a best trial is a completed one with a value
        return value

    def trials_dataframe(self) -> pd.DataFrame:
        """The trials as a pandas DataFrame, one row per trial, as Optuna's ``trials_dataframe``.

        Returns:
            Columns ``number``, ``state``, ``value``, ``datetime_start``, ``datetime_complete``,
            ``duration`` (a Timedelta), ``epochs_run``, then one ``params_<name>`` column per tuned
            parameter and one ``metrics_<name>`` column per final metric (missing values are NaN).
        """
        import pandas as pd

        rows = []
        for trial in self.trials:
            row: dict[str, Any] = {
                "number": trial.number,
                "state": trial.state.value,
                "value": math.nan if trial.value is None else trial.value,
                "datetime_start": pd.Timestamp(trial.started_at),
                "datetime_complete": pd.Timestamp(trial.ended_at) if trial.ended_at else pd.NaT,
                "duration": pd.NaT if trial.duration_s is None else pd.Timedelta(seconds=trial.duration_s),
                "epochs_run": trial.epochs_run,
            }
            row.update({f"params_{name}": value for name, value in trial.params.items()})
            row.update({f"metrics_{name}": value for name, value in trial.metrics.items()
                        if isinstance(value, int | float) and not isinstance(value, bool)})
            rows.append(row)
        fixed = ["number", "state", "value", "datetime_start", "datetime_complete", "duration", "epochs_run"]
        frame = pd.DataFrame(rows, columns=None if rows else fixed)
        params = sorted(c for c in frame.columns if c.startswith("params_"))
        metrics = sorted(c for c in frame.columns if c.startswith("metrics_"))
        return frame[fixed + params + metrics]

    def curves(self, trial: int | TrialRecord | None = None) -> pd.DataFrame:
        """A trial's per-epoch metrics, as recorded while it trained.

        Args:
            trial: its number (or record); default the best trial.

        Returns:
            One row per epoch (index ``epoch``, from 1), one column per metric (``loss``, ``val_loss``,
            the objective, ...).

        Raises:
            UsageError: no trial of that number.
            NoResultError: no trial given and none has completed.
        """
        import pandas as pd

        number = self.best_trial.number if trial is None else getattr(trial, "number", trial)
        store = self._open()
        record = store.get_study(self.name)
        found = [t for t in store.list_trials(record.id, with_epochs=True) if t.number == number]
        if not found:
            raise UsageError(f"study '{self.name}' has no trial #{number}")
        curves = found[0].curves
        length = max((len(values) for values in curves.values()), default=0)
        frame = pd.DataFrame(
            {name: [math.nan if v is None else v for v in values] + [math.nan] * (length - len(values))
             for name, values in curves.items()},
            index=pd.RangeIndex(1, length + 1, name="epoch"),
        )
        return frame

    def compare(self, *others: Study | str) -> pd.DataFrame:
        """This study beside others, as ``hpsearch compare`` computes it (any engines, same store).

        Args:
            *others: studies or study names of the same store.

        Returns:
            One row per study (index ``study``): engine, algorithm, objective, trials, ``states`` (counts
            by state), epochs and seconds spent, best trial and value, and ``retrained`` (the test metrics
            of a retrained model, or None). Search and test scores are not directly comparable.

        Raises:
            UsageError: a study name that is not in this store.
        """
        import pandas as pd

        from .results.compare import compare_studies

        names = [self.name] + [other.name if isinstance(other, Study) else other for other in others]
        rows = compare_studies(self._open(), names)
        return pd.DataFrame(rows).set_index("study")

    # -- acting -------------------------------------------------------------------------------------
    def resume(
        self,
        trials: int | None = None,
        *,
        timeout: float | None = None,
        workers: int = 1,
        progress: bool | None = None,
        in_process: bool = False,
        **options: Any,
    ) -> Study:
        """Continue the study, as ``hpsearch resume`` does: to its budget, or to a new total.

        Interrupted trials (Ctrl-C, a crash, ``kill -9``) are failed and their configurations retried
        first; completed ones are kept.

        Args:
            trials: the new total trial budget (default: the study's).
            timeout: stop starting trials after this many seconds.
            workers: worker processes training at once (more than 1: optuna only).
            progress: show progress and the summary (default: as the study was run or loaded).
            in_process: train here instead of in supervised worker processes.
            **options: other settings ``hpsearch resume`` takes: ``max_failures``, ``jobs``, ``pruner``,
                ``pack``, ``dask``, ``stale_after_s``, ``checkpoint_dir`` change them; ``seed``, ``cv``,
                ``trainer``, ``backend``, ... must match what the study used.

        Returns:
            This study.

        Raises:
            StudyMismatchError: an option that would change what the trials mean.
            KeyboardInterrupt: Ctrl-C; the study stays resumable.
        """
        from .python_api import api_session
        from .study import resume_study
        from .study_options import Isolation

        shown = self._progress if progress is None else progress
        given = {key: value for key, value in options.items() if value is not None}
        with api_session(shown) as out:
            resume_study(self.name, self.storage, trials=trials, timeout_s=timeout, given=given,
                         progress=shown, isolation=Isolation(workers=workers, in_process=in_process), out=out)
        return self

    def retrain(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        trial: int | None = None,
        progress: bool | None = None,
        **options: Any,
    ) -> Retrained:
        """Retrain the best configuration (or ``trial``) and export it, as ``hpsearch retrain`` does.

        Trains on the study's train split with early stopping, evaluates on the test split the search
        never saw, writes ``model.keras`` with its card ``model.json`` (and the checkpoint, CSV and
        TensorBoard logs) into ``out``, and records the model in the store.

        Args:
            out: output folder (default ``models/STUDY/trial-N-TIME/``); one holding an earlier
                retrain's files is kept and ``OUT-2`` written instead.
            trial: the trial number to retrain (default the best).
            progress: show progress (default: as the study was run or loaded).
            **options: as ``hpsearch retrain``'s options: ``epochs``, ``patience``, ``restore_best``,
                ``lr_factor``, ``lr_patience``, ``threshold_for``, ``seeds``, ``seed``.

        Returns:
            The exported model and its card (``model, card = study.retrain()``), and the file's path.

        Raises:
            UsageError: an option with a bad value or one ``retrain`` does not have.
            RetrainFailedError: every run diverged; nothing was exported.
        """
        from .python_api import api_session
        from .results.export import load_card, load_exported
        from .results.retrain import RetrainOptions, retrain_study

        known = {"epochs", "patience", "restore_best", "lr_factor", "lr_patience", "threshold_for", "seeds",
                 "seed"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"retrain has no option {unknown[0]!r}; its options are "
                             f"{', '.join(sorted(known))}")
        given = {key: value for key, value in options.items() if value is not None}
        if "lr_factor" in given or "lr_patience" in given:
            given["reduce_lr"] = True  # as on the command line: asking for the plateau callback turns it on
        shown = self._progress if progress is None else progress
        retrain_options = RetrainOptions(trial=trial, out=None if out is None else os.fspath(out),
                                         progress=shown, **given)
        with api_session(shown) as out:
            result = retrain_study(self.name, self.storage, retrain_options, out=out)
        return Retrained(load_exported(result.model_path), load_card(result.model_path), result.model_path)

    # -- plots ------------------------------------------------------------------------------------------
    def _figure(self, name: str, top: int = 5) -> Any:
        from .results.plots import study_figures

        store = self._open()
        figures = study_figures(store, store.get_study(self.name), top=top, which=(name,))
        if name not in figures:
            from .errors import NoResultError

            raise NoResultError(f"study '{self.name}' has no retrained model with a training log; "
                                "call retrain() first")
        return figures[name]

    def plot_history(self) -> Any:
        """Best-so-far against trial number and against time (``hpsearch plot``'s ``history.png``).

        Returns:
            A matplotlib ``Figure`` (shown inline when it is a notebook cell's value).

        Raises:
            NoResultError: no trial has completed yet.
        """
        return self._figure("history")

    def plot_curves(self, top: int = 5) -> Any:
        """Per-epoch objective and loss of the best trials (``hpsearch plot``'s ``top-trials.png``).

        Args:
            top: how many of the best trials.

        Returns:
            A matplotlib ``Figure``.

        Raises:
            NoResultError: no trial has completed yet.
        """
        return self._figure("top-trials", top)

    def plot_retrain(self) -> Any:
        """Loss, objective and learning rate per epoch of the latest retrain (``retrain.png``).

        Returns:
            A matplotlib ``Figure``.

        Raises:
            NoResultError: the study has no retrained model yet.
        """
        return self._figure("retrain")

    def __repr__(self) -> str:
        try:
            record = self.record
            trials = self.trials
        except Exception:  # noqa: BLE001 - a repr never raises; it says what it could not read
            return f"<Study {self.name!r} in {self.storage} (unreadable)>"
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.state.value.lower()] = counts.get(trial.state.value.lower(), 0) + 1
        states = ", ".join(f"{count} {state}" for state, count in counts.items())
        best = ""
        top = self._open().best_trials(record.id, 1)
        if top and top[0].value is not None:
            best = f", best {record.objective}={top[0].value:.4g} (#{top[0].number})"
        shown = f" ({states})" if states else ""
        return (f"<Study {self.name!r}: {record.engine}/{record.algorithm}, {len(trials)} trials{shown}"
                f"{best}>")

