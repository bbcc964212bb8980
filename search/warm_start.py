"""Warm start: seed a new study with the completed trials of earlier studies, whatever engine ran them.

``hpsearch run ... --warm-start A,B`` copies every completed trial of studies A and B into the new study
when the trial's result means the same thing there:

- the studies must share the data (fingerprint, target, split, weights), the task and the objective;
  otherwise the whole source is refused (exit 2), naming what differs;
- a trial is copied only if its full configuration (tuned values, fixed values, defaults) is one the new
  space can propose: every tuned value in the new range, on its step or grid, among its choices, and every
  value the new space fixes equal to the one the trial trained with. It must also have trained every
  epoch its configuration sets (a Hyperband round that stopped early is not that configuration's result);
- for the scikit-learn engine a copy stands for a candidate already scored, so it must have been
  cross-validated by the same folds: an sklearn study with the same ``--cv`` (same data and seed give
  the same splits) and the same ``--trainer``. Trials scored on a validation split are skipped there.

Other trials are skipped, each with its reason. A copy is a new COMPLETE trial of the new study that
names its source (``copied_from``), keeps its value, metrics, epochs and curves, and never counts toward
the budget: ``--trials N`` still trains N new trials. How each engine learns from the copies is its own
business (``Engine.warm_start_note``): Optuna's sampler gets them as finished trials, KerasTuner's random
and Bayesian oracles as ended trials of their history, scikit-learn skips fitting their candidates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.spaces import SearchSpace, SpaceError, resolve_config, space_from_dict
from hpsearch.spaces.params import CategoricalParam, FloatParam, IntParam
from hpsearch.storage import (
    Storage,
    StudyNotFoundError,
    StudyRecord,
    TrialCopy,
    TrialRecord,
    TrialState,
    config_key,
)

from .errors import UsageError
from .settings import WARM_START_KEY, StudySettings

if TYPE_CHECKING:
    from .engines.base import Engine

#: Study settings key listing the studies a study was warm-started from.
WARM_START_SETTING = WARM_START_KEY
#: Parts of a study's data reference that decide what its scores mean (beside the fingerprint).
DATA_KEYS = ("target", "seed", "test_size", "val_size", "class_weight", "sample_weight")
#: Trial numbers shown per skipped group before "..." (the count is always shown).
_SHOWN_NUMBERS = 8


@dataclass(frozen=True)
class Skip:
    """A source trial that was not copied, and why."""

    study: str
    number: int
    #: Why, in words shared by every trial skipped for the same reason.
    reason: str
    #: This trial's own value of what the reason is about (``n_neurons=22``), if any.
    detail: str | None = None


@dataclass(frozen=True)
class WarmStartPlan:
    """What a warm start copies and skips; computed before the new study is created."""

    sources: tuple[str, ...]
    copies: tuple[TrialCopy, ...]
    skipped: tuple[Skip, ...]

    def lines(self) -> list[str]:
        """The skips grouped by study and reason, then the one-line summary."""
        groups: dict[tuple[str, str], list[Skip]] = {}
        for skip in self.skipped:
            groups.setdefault((skip.study, skip.reason), []).append(skip)
        lines = []
        for (study, reason), skips in groups.items():
            shown = ", ".join(f"#{skip.number}" + (f" {skip.detail}" if skip.detail else "")
                              for skip in skips[:_SHOWN_NUMBERS])
            more = ", ..." if len(skips) > _SHOWN_NUMBERS else ""
            noun = "trial" if len(skips) == 1 else "trials"
            lines.append(f"warm start: study '{study}': {len(skips)} {noun} skipped: {reason} "
                         f"({shown}{more})")
        per_source: dict[str, int] = dict.fromkeys(self.sources, 0)
        for copy in self.copies:
            per_source[copy.source_study] += 1
        copied = ", ".join(f"{count} from '{name}'" for name, count in per_source.items())
        lines.append(f"warm start: copied {len(self.copies)} trials ({copied}); skipped {len(self.skipped)}; "
                     "copies do not count toward the trial budget")
        return lines


def parse_sources(text: str | Sequence[str] | None) -> list[str]:
    """``A,B`` (or a list of such) as study names, in order, each once; empty names are refused."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    names: list[str] = []
    for part in parts:
        for name in str(part).split(","):
            name = name.strip()
            if not name:
                raise UsageError(f"--warm-start takes study names separated by commas, but got {part!r}")
            if name not in names:
                names.append(name)
    return names


def plan_warm_start(
    storage: Storage,
    *,
    study_name: str,
    sources: Sequence[str],
    space: SearchSpace,
    engine: Engine,
    settings: StudySettings,
    dataset: Mapping[str, Any],
) -> WarmStartPlan:
    """Decide which completed trials of ``sources`` a new study (not yet created) copies.

    ``dataset`` is the new study's data reference with its fingerprint; ``settings`` its settings
    (algorithm, seed, cv). Raises UsageError (exit 2) for a source that does not exist, is the new study
    itself, or ran on other data, task or objective.
    """
    copies: list[TrialCopy] = []
    skipped: list[Skip] = []
    copied_keys: dict[str, str] = {}
    grid = _grid_search(engine.name, settings)
    for name in sources:
        if name == study_name:
            raise UsageError(f"--warm-start cannot name the study being created ('{name}'): a study cannot "
                             "be warm-started from itself")
        source = _source_study(storage, name)
        _check_compatible(source, space, dataset)
        source_space = space_from_dict(source.space, f"study '{source.name}'")
        trials = storage.list_trials(source.id)
        by_number = {trial.number: trial for trial in trials}
        fold_rule = _fold_rule(engine, settings, source)
        for trial in trials:
            why, point = _why_not(trial, by_number, source_space, space, grid, fold_rule)
            if why is None:
                assert point is not None
                key = config_key(point)
                if key in copied_keys:
                    why = ("the same configuration is already copied", f"as {copied_keys[key]}")
                else:
                    copied_keys[key] = f"'{name}' #{trial.number}"
                    copies.append(TrialCopy(trial, name, point, engine.copy_identity(space, settings, point)))
                    continue
            skipped.append(Skip(name, trial.number, *why))
    return WarmStartPlan(tuple(sources), tuple(copies), tuple(skipped))


def check_resumed_sources(study: StudyRecord, sources: Sequence[str]) -> None:
    """``run --resume --warm-start`` on an existing study: accepted only when it names the sources the
    study was created with (nothing is copied again); anything else would need another study."""
    recorded = list(StudySettings.from_record(study.settings).warm_start or [])
    if list(sources) != recorded:
        was = ",".join(recorded) if recorded else "none"
        raise UsageError(
            f"--warm-start applies when a study is created; study '{study.name}' exists (warm-started "
            f"from: {was}) and a resume never copies trials again; start a new study to warm-start from "
            f"{','.join(sources)}"
        )


# -- sources --------------------------------------------------------------------------------------------
def _source_study(storage: Storage, name: str) -> StudyRecord:
    try:
        return storage.get_study(name)
    except StudyNotFoundError as missing:
        raise UsageError(f"--warm-start: {missing}") from None


def _check_compatible(source: StudyRecord, space: SearchSpace, dataset: Mapping[str, Any]) -> None:
    """Scores of another data set, task or objective mean something else: refuse the source, saying what
    differs."""
    theirs = source.dataset
    differences = []
    if theirs.get("fingerprint") != dataset.get("fingerprint"):
        differences.append(
            f"data fingerprint ({str(theirs.get('fingerprint'))[:12]} of {theirs.get('source')}, this study: "
            f"{str(dataset.get('fingerprint'))[:12]} of {dataset.get('source')})"
        )
    else:
        for key in DATA_KEYS:
            if theirs.get(key) != dataset.get(key):
                differences.append(f"data {key.replace('_', ' ')} ({theirs.get(key)}, this study: "
                                   f"{dataset.get(key)})")
    if theirs.get("task") != dataset.get("task"):
        differences.append(f"task ({theirs.get('task')}, this study: {dataset.get('task')})")
    if source.objective != space.objective or source.direction != space.direction:
        differences.append(f"objective ({source.objective}, {source.direction}; this study: "
                           f"{space.objective}, {space.direction})")
    if differences:
        raise UsageError(
            f"--warm-start: study '{source.name}' differs in {'; '.join(differences)}; its scores would not "
            "mean the same here, so warm start needs the same data, task and objective"
        )


def _grid_search(engine: str, settings: StudySettings) -> bool:
    return settings.algorithm == "grid" and engine in ("sklearn", "optuna")


def _fold_rule(engine: Engine, settings: StudySettings, source: StudyRecord) -> str | None:
    """Why no trial of ``source`` stands for a candidate of an sklearn study (None: they may)."""
    if engine.name != "sklearn":
        return None
    from .engines.sklearn.settings import cv_folds, fold_trainer

    folds = cv_folds(settings)
    if source.engine != "sklearn":
        return (f"scored on a validation split by engine {source.engine}; the sklearn engine copies only "
                f"candidates cross-validated on the same {folds} folds")
    theirs = cv_folds(StudySettings.from_record(source.settings))
    if theirs != folds:
        return f"cross-validated on {theirs} folds; this study uses {folds}, so the folds differ"
    trainer, their_trainer = fold_trainer(settings), fold_trainer(StudySettings.from_record(source.settings))
    if their_trainer != trainer:
        # The same candidate scores within noise, not the same, under the other trainer (another batch order).
        return (f"its folds were fitted by --trainer {their_trainer}; this study uses --trainer {trainer}, "
                "whose scores differ")
    return None


# -- one trial ------------------------------------------------------------------------------------------
#: Why a trial is skipped: the reason, shared by the trials a line groups, and this trial's own value.
_Why = tuple[str, str | None]


def _why_not(
    trial: TrialRecord,
    by_number: Mapping[int, TrialRecord],
    source_space: SearchSpace,
    space: SearchSpace,
    grid: bool,
    fold_rule: str | None,
) -> tuple[_Why | None, dict[str, Any] | None]:
    """(None, the point in the new space) for a trial to copy, else (why not, None)."""
    if trial.state is not TrialState.COMPLETE or trial.value is None:
        return (f"{trial.state.value.lower()}; only completed trials are copied", None), None
    if fold_rule is not None:
        return (fold_rule, None), None
    try:
        config = resolve_config(source_space, trial.params)
    except SpaceError as error:
        return (f"its parameters no longer resolve ({error})", None), None
    trained = _epochs_trained(trial, by_number)
    if trained != int(config["epochs"]):
        # A Hyperband round: its score is that of a shorter (or longer, --max-epochs) training.
        return (f"a Hyperband round: trained another number of epochs than the {config['epochs']} its "
                "configuration sets, so its score is not that configuration's", f"{trained} epochs"), None
    point: dict[str, Any] = {}
    for name, param in space.params.items():
        problem = _outside(param, config.get(name), grid)
        if problem is not None:
            return (problem, f"{name}={config.get(name)!r}"), None
        point[name] = param.normalise(config[name])
    try:
        new_config = resolve_config(space, point)
    except SpaceError as error:
        return (f"not a configuration of the new space ({error})", None), None
    for name, value in new_config.items():
        if name not in space.params and not _same(value, config.get(name)):
            return (f"trained with another {name} than the {value!r} the new space fixes",
                    f"{name}={config.get(name)!r}"), None
    return None, point


def _epochs_trained(trial: TrialRecord, by_number: Mapping[int, TrialRecord]) -> int:
    """Epochs the configuration trained up to this trial, over a Hyperband chain of rounds."""
    total, seen = trial.epochs_run, {trial.number}
    parent = by_number.get(trial.parent_number) if trial.parent_number is not None else None
    while parent is not None and parent.number not in seen:
        seen.add(parent.number)
        total += parent.epochs_run
        parent = by_number.get(parent.parent_number) if parent.parent_number is not None else None
    return total


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _outside(param: Any, value: Any, grid: bool) -> str | None:
    """Why ``value`` is not a value the new space's ``param`` can take (None: it is); the value itself is
    shown beside the trial, so trials with different values group under one reason."""
    name = param.name
    if isinstance(param, CategoricalParam):
        if any(_same(value, choice) for choice in param.choices):
            return None
        return f"{name} is not among the new space's choices {list(param.choices)!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name} is not a number, as the new space's {name} is"
    if isinstance(param, IntParam) and float(value) != round(float(value)):
        return f"{name} is not an integer, as the new space's {name} is"
    if param.grid_only or grid:
        values = param.grid_values()
        if any(_same(value, candidate) for candidate in values):
            return None
        return f"{name} is not on the new grid {values!r}"
    low, high = param.low, param.high
    if not (low - _slack(low) <= value <= high + _slack(high)):
        return f"{name} lies outside the new space's range [{low!r}, {high!r}]"
    step = param.step
    if step is not None and not (isinstance(param, IntParam) and step == 1):
        steps = (value - low) / step
        if not math.isclose(steps, round(steps), rel_tol=0, abs_tol=1e-8):
            return f"{name} is not on the new space's step {step!r} from {low!r}"
    assert isinstance(param, IntParam | FloatParam)
    return None


def _slack(bound: float) -> float:
    # Values stored as JSON round-trip exactly; the slack only forgives a bound written as 0.1 vs 0.1000..1.
    return 1e-12 * max(1.0, abs(bound))
