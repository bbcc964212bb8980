"""The KerasTuner engine: RandomSearch, Hyperband and BayesianOptimization oracles on the shared space.

KerasTuner's oracle decides what to try; hpsearch trains each trial (each Hyperband round included) with
the shared builder and records it. The engine checks and describes a study's options here; the rest
lives beside it:

- ``plan``: Hyperband's brackets and rounds, from ``--max-epochs`` and ``--factor``;
- ``oracle``: the oracle, its state kept in the study's settings instead of KerasTuner's files;
- ``weights``: Hyperband's best-epoch weights kept on disk between rounds;
- ``search``: one run of the search as the driver's session, shared by ``local`` (trials trained in
  this process) and ``cluster`` (each trial a Dask task, ``--dask``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpsearch.spaces import SearchSpace
from hpsearch.storage import TrialRecord

from ...errors import UsageError
from ...runtime.backends import check_backend, describe_backend, study_backend
from ...settings import StudySettings
from ...training.context import RunContext
from ...training.population_option import population_size
from ..base import Engine
from .plan import describe_plan, hyperband_plan, hyperband_settings, plan_trials
from .search import KerasTunerSearch


class KerasTunerEngine(Engine):
    """KerasTuner's random, Hyperband and Bayesian oracles proposing; hpsearch training and recording."""

    name = "keras-tuner"
    algorithms = ("random", "hyperband", "bayesian")
    default_algorithm = "random"
    options = ("max_epochs", "factor", "dask", "backend", "population")
    #: The options of Hyperband's plan (refused with other algorithms).
    hyperband_options = ("max_epochs", "factor")

    def check(self, space: SearchSpace, settings: StudySettings) -> None:
        from ...executors.cluster import check_address

        check_address(settings.dask)
        check_backend(settings)
        algorithm = settings.algorithm
        _check_population(space, settings)
        if algorithm != "hyperband":
            given = [key for key in self.hyperband_options if getattr(settings, key) is not None]
            if given:
                flags = " and ".join("--" + key.replace("_", "-") for key in given)
                raise UsageError(f"{flags} apply to --algorithm hyperband only, not '{algorithm}'; "
                                 f"the trial budget of {algorithm} search is --trials")
            return
        hyperband_settings(space, settings)
        if "epochs" in space.params:
            raise UsageError(
                f"space {space.source} tunes 'epochs', but Hyperband decides how long each model trains; "
                "fix epochs in the space (it is the default --max-epochs) or use --algorithm random"
            )

    def resolved_options(self, space: SearchSpace, settings: StudySettings) -> dict[str, Any]:
        backend = study_backend(settings)
        if settings.algorithm != "hyperband":
            return {"max_epochs": None, "factor": None, "backend": backend,
                    "population": settings.population or "off"}
        max_epochs, factor = hyperband_settings(space, settings)
        return {"max_epochs": max_epochs, "factor": factor, "backend": backend,
                "population": settings.population or "off"}

    def planned_trials(self, space: SearchSpace, settings: StudySettings) -> int | None:
        """The trial budget when ``--trials`` is not given: one full Hyperband iteration."""
        if settings.algorithm != "hyperband":
            return None
        return plan_trials(hyperband_plan(*hyperband_settings(space, settings)))

    def short_plan_reason(self, space: SearchSpace, settings: StudySettings, spent: int) -> str:
        if settings.algorithm != "hyperband":
            return "the oracle found no configuration it had not tried yet"
        planned = self.planned_trials(space, settings)
        if planned is not None and spent >= planned:
            return f"one Hyperband iteration is {planned} trials"
        # KerasTuner's rule in HyperbandOracle.populate_space, which HyperbandWeights.collect mirrors.
        return ("KerasTuner promotes a round's best only while its completed, unpromoted trials outnumber "
                "those the next round leaves out, so a round with failed trials promotes fewer than planned")

    def describe(self, space: SearchSpace, settings: StudySettings) -> list[str]:
        from ...executors.cluster import dask_address, describe

        algorithm = settings.algorithm
        lines = [f"{len(space.params)} tuned parameters: {', '.join(space.params) or '(none)'}",
                 describe_backend(settings)]
        address = dask_address(settings)
        if address is not None:
            lines.append(f"{describe(address)}: each trial a task, as many at once as the cluster has worker "
                         "threads; the oracle stays in this run")
        members = population_size(settings.population, algorithm)
        if members:
            lines.append(f"populations: {members} trials asked of the oracle at a time; those sharing depth "
                         "and batch size train as one stacked model (a retry of an interrupted trial trains "
                         "alone)")
        if algorithm != "hyperband":
            oracle = "RandomSearchOracle" if algorithm == "random" else "BayesianOptimizationOracle"
            return [f"engine keras-tuner, algorithm {algorithm} ({oracle}); nothing kept on disk", *lines]
        max_epochs, factor = hyperband_settings(space, settings)
        lines.insert(0, f"engine keras-tuner, algorithm hyperband: max epochs {max_epochs}, factor {factor}")
        return [*lines, *describe_plan(hyperband_plan(max_epochs, factor))]

    def copy_identity(self, space: SearchSpace, settings: StudySettings, point: Mapping[str, Any]) -> Any:
        if settings.algorithm == "hyperband":
            return dict(point)  # a round's identity holds its bracket and round: no copy is one
        from hpsearch.spaces.compile_keras_tuner import hyperparameter_values

        # As ``plan_trial`` identifies a random or Bayesian trial: its values as the oracle holds them.
        return {"values": hyperparameter_values(space, dict(point))}

    def warm_start_note(self, settings: StudySettings, copied: int) -> str:
        algorithm = settings.algorithm
        if algorithm == "hyperband":
            return (f"warm start: KerasTuner's Hyperband draws each bracket's configurations itself and does "
                    f"not learn from the {copied} copied trial(s); they rank with the study's own trials")
        learns = ("records their values as tried, so it does not propose them again" if algorithm == "random"
                  else "fits its Gaussian process to them before proposing")
        return (f"warm start: KerasTuner's {algorithm} oracle takes the {copied} copied trial(s) as its "
                f"history and {learns}")

    def recover(self, ctx: RunContext, interrupted: list[TrialRecord]) -> None:
        """Nothing to do here: the next session's ``start`` reconciles the oracle's snapshot with our trial
        table, which covers trials failed by ``resume`` or by the supervisor alike."""

    def session(self, ctx: RunContext) -> KerasTunerSearch:
        """The oracle's search for this run: trials trained here, or as tasks on the Dask cluster."""
        from ...executors.cluster import dask_address

        address = dask_address(ctx.settings)
        if address is None:
            from .local import LocalSearch

            return LocalSearch(ctx)
        from .cluster import DaskSession

        return DaskSession(ctx, address)


def _check_population(space: SearchSpace, settings: StudySettings) -> None:
    """Refuse ``--population`` where the engine cannot train populations; UsageError naming the option."""
    if not population_size(settings.population, settings.algorithm):
        return
    given = f"--population {settings.population}"
    if settings.algorithm != "random":
        # Hyperband's later rounds continue and keep weights, and the Bayesian oracle picks each trial
        # from the results before it: neither hands out a round of fresh trials at once.
        raise UsageError(f"{given} works with --engine keras-tuner --algorithm random only, not "
                         f"'{settings.algorithm}'; leave out --population (or use --engine optuna)")
    if space.train is not None:
        raise UsageError(f"space {space.source} names a training function, which trains itself: leave out "
                         "--population")
    from ...executors.cluster import dask_address

    if dask_address(settings) is not None:
        raise UsageError(f"{given} trains its populations on this machine; leave out --dask (or unset "
                         "HPSEARCH_DASK)")
    if study_backend(settings) != "tensorflow":
        raise UsageError(f"{given} needs --backend tensorflow: a population trains as one TensorFlow graph")
