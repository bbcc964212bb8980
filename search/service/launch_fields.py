"""Launch and resume requests of ``hpsearch serve``: checked fields in, a safe ``hpsearch`` argument list out.

A request body is untrusted text. Every field is checked here against its own rule (JSON type, range,
choices, pattern, length) before anything is started, and an unknown field is refused; the result is a
frozen object whose values reach the child process only as values:

- every option is written as one ``--flag=value`` argument, so argparse never reads a value as an option
  (``--target --storage=x`` would make ``--storage=x`` an option; ``--target=--storage=x`` cannot);
- positionals (the space, the study of a resume) come after ``--``;
- and, independently, no text field may start with ``-`` or hold a control character (a NUL byte, a
  newline), so even a child that parsed differently would see no option in a value.

The same field table builds the OpenAPI document (:mod:`hpsearch.service.openapi`), so what the document
promises is what the server checks, and a fuzzer driven by the document exercises these rules.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import UsageError
from ..limits import TRIALS, WORKERS, Limit

#: Names a launch may give a study: they appear in URLs, file names and printed commands.
STUDY_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
STUDY_NAME = re.compile(STUDY_NAME_PATTERN)
#: The longest text field other than ``space`` (a file path, a column name, a list of studies).
MAX_TEXT = 1024
#: Largest value of the 32-bit seeds NumPy, TensorFlow and Optuna accept.
MAX_SEED = 2**32 - 1
#: Seconds a ``timeout`` may ask for: a year; a larger number is a typo, not a budget.
MAX_TIMEOUT_S = 366 * 24 * 3600.0
#: MiB ``max_worker_memory`` may name (a petabyte): anything above is no limit at all, said wrongly.
MAX_WORKER_MEMORY_MB = 2.0**30


class RequestError(UsageError):
    """A field of a request is missing a rule it must hold (answered 400, with the field named)."""


@dataclass(frozen=True)
class Field:
    """One request field: its JSON type and rule, and the ``hpsearch`` option it becomes.

    ``low``/``high`` bound numbers (``high`` may be a :class:`~hpsearch.limits.Limit`, read when checked, so
    an environment variable raises it); ``choices`` may be a function, for lists known only at run time.
    """

    name: str
    flag: str | None  # None: not passed as a plain option (study, space, preset, data)
    kind: str  # "integer" | "number" | "string"
    description: str
    low: float | None = None
    high: float | Limit | None = None
    low_exclusive: bool = False
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    pattern: str | None = None
    max_length: int = MAX_TEXT

    def allowed(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def upper(self) -> float | None:
        return self.high.value() if isinstance(self.high, Limit) else self.high

    def check(self, value: Any) -> Any:
        """``value`` if it holds this field's rule, else :class:`RequestError` naming the field."""
        if self.kind == "string":
            return self._check_text(value)
        # bool is an int to Python, never to a user who wrote `true`.
        if isinstance(value, bool) or not isinstance(value, int if self.kind == "integer" else (int, float)):
            wanted = "an integer" if self.kind == "integer" else "a number"
            raise RequestError(f"{self.name} must be {wanted}, but got {_shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(f"{self.name} must be a finite number, but got {value}")
        if self.low is not None and (value <= self.low if self.low_exclusive else value < self.low):
            relation = "greater than" if self.low_exclusive else "at least"
            raise RequestError(f"{self.name} must be {relation} {_number(self.low)}, but got {value}")
        if isinstance(self.high, Limit):
            self.high.check(value, self.name)
        elif self.high is not None and value > self.high:
            raise RequestError(f"{self.name} must be at most {_number(self.high)}, but got {value}")
        return value

    def _check_text(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise RequestError(f"{self.name} must be a non-empty string, but got {_shown(value)}")
        if len(value) > self.max_length:
            raise RequestError(f"{self.name} must be at most {self.max_length} characters, but got "
                               f"{len(value)}")
        control = _control_character(value, allow_newlines=self.name == "space")
        if control is not None:
            raise RequestError(f"{self.name} must not hold control characters, but it holds {control!r}")
        if self.name != "space" and (value.startswith("-") or value[0].isspace()):
            raise RequestError(f"{self.name} must not start with '-' or a space (it could read as an "
                               f"option), but got {_shown(value)}")
        allowed = self.allowed()
        if allowed and value not in allowed:
            raise RequestError(f"{self.name} must be one of {', '.join(allowed)}, but got {_shown(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise RequestError(f"{self.name} must match {self.pattern}, but got {_shown(value)}")
        return value

    def argument(self, value: Any) -> str:
        """The one ``--flag=value`` argument of ``value`` (already checked)."""
        assert self.flag is not None
        return f"{self.flag}={value!r}" if isinstance(value, float) else f"{self.flag}={value}"


def _engines() -> tuple[str, ...]:
    from ..engines.registry import available_engines

    return available_engines()


def _trainers() -> tuple[str, ...]:
    from ..engines.sklearn.settings import TRAINERS

    return tuple(TRAINERS)


def _backends() -> tuple[str, ...]:
    from ..runtime.backends import BACKENDS

    return tuple(BACKENDS)


_NAME_LIKE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"

#: Every field a launch accepts, in the order of ``hpsearch run``'s help.
LAUNCH_FIELDS: tuple[Field, ...] = (
    Field("study", None, "string", "study name (default: DATA-ENGINE-ALGORITHM-TIME, as `hpsearch run`)",
          pattern=STUDY_NAME_PATTERN, max_length=128),
    Field("space", None, "string", "the search space as YAML or JSON text", max_length=2**31),
    Field("preset", None, "string", "a bundled space preset (default: 'default'), or a .yaml/.yml/.json "
          "file under the server's --data-dir"),
    Field("data", None, "string", "a bundled dataset, or a .csv/.npz path relative to the server's "
          "--data-dir (default: digits)"),
    Field("engine", "--engine", "string", "search engine (default optuna)", choices=_engines),
    Field("algorithm", "--algorithm", "string", "the engine's algorithm (optuna: tpe, random, grid, cmaes; "
          "keras-tuner: random, hyperband, bayesian; sklearn: grid, random, halving-grid, halving-random)",
          pattern=r"[a-z][a-z0-9-]{0,39}", max_length=40),
    Field("pruner", "--pruner", "string", "optuna pruner", choices=("median", "hyperband", "none")),
    Field("pack", "--pack", "integer", "optuna: proposals trained together", low=1, high=1024),
    Field("population", "--population", "string", "optuna: proposals trained as one stacked model "
          "(auto, off, or a count)", pattern=r"auto|off|[1-9][0-9]{0,3}", max_length=4),
    Field("target", "--target", "string", "target column of a CSV file", max_length=256),
    Field("task", "--task", "string", "override the space's task",
          choices=("auto", "binary", "multiclass", "regression")),
    Field("trials", "--trials", "integer", "trial budget", low=1, high=TRIALS),
    Field("timeout", "--timeout", "number", "seconds after which no trial starts", low=0,
          low_exclusive=True, high=MAX_TIMEOUT_S),
    Field("seed", "--seed", "integer", "random seed", low=0, high=MAX_SEED),
    Field("class_weight", "--class-weight", "string", "class weights", choices=("balanced",)),
    Field("sample_weight", "--sample-weight", "string", "CSV column of per-row weights", max_length=256),
    Field("cv", "--cv", "integer", "sklearn: folds", low=2, high=1000),
    Field("jobs", "--jobs", "integer", "sklearn: folds trained in parallel", low=1, high=WORKERS),
    Field("trainer", "--trainer", "string", "sklearn: how folds train", choices=_trainers),
    Field("backend", "--backend", "string", "Keras backend", choices=_backends),
    Field("max_epochs", "--max-epochs", "integer", "keras-tuner hyperband: most epochs of a trial", low=1,
          high=100_000),
    Field("factor", "--factor", "integer", "keras-tuner hyperband: reduction factor", low=2, high=1000),
    Field("max_failures", "--max-failures", "integer", "consecutive failed trials that stop the study",
          low=1, high=TRIALS),
    Field("workers", "--workers", "integer", "worker processes training at once", low=1, high=WORKERS),
    Field("recycle_after", "--recycle-after", "integer", "replace a worker after this many trials", low=1,
          high=1_000_000),
    Field("max_worker_memory", "--max-worker-memory", "number", "replace a worker past this many MiB",
          low=0, low_exclusive=True, high=MAX_WORKER_MEMORY_MB),
    # "A,B": studies whose completed trials seed the new one (see hpsearch.warm_start).
    Field("warm_start", "--warm-start", "string", "studies (comma-separated) whose completed trials seed "
          "this one"),
)
_BY_NAME = {spec.name: spec for spec in LAUNCH_FIELDS}
#: What a resume accepts (a new budget and how to run it; the rest is the study's own).
RESUME_FIELDS: tuple[Field, ...] = tuple(
    _BY_NAME[name] for name in ("trials", "timeout", "workers", "recycle_after", "max_worker_memory"))


def _check_body(body: Mapping[str, Any], accepted: tuple[Field, ...]) -> dict[str, Any]:
    names = [spec.name for spec in accepted]
    unknown = [key for key in body if key not in names]
    if unknown:
        raise RequestError(f"unknown field {_shown(unknown[0])}; accepted fields: {', '.join(names)}")
    return {spec.name: spec.check(body[spec.name]) for spec in accepted if body.get(spec.name) is not None}


@dataclass(frozen=True)
class LaunchRequest:
    """A checked launch: each field holds its rule; ``None`` means the CLI's default."""

    study: str | None = None
    space: str | None = None
    preset: str | None = None
    data: str | None = None
    engine: str | None = None
    algorithm: str | None = None
    pruner: str | None = None
    pack: int | None = None
    target: str | None = None
    task: str | None = None
    trials: int | None = None
    timeout: float | None = None
    seed: int | None = None
    class_weight: str | None = None
    sample_weight: str | None = None
    cv: int | None = None
    jobs: int | None = None
    trainer: str | None = None
    backend: str | None = None
    max_epochs: int | None = None
    factor: int | None = None
    max_failures: int | None = None
    workers: int | None = None
    recycle_after: int | None = None
    max_worker_memory: float | None = None
    warm_start: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> LaunchRequest:
        """Check a launch body field by field.

        Raises:
            RequestError: an unknown field, or a field that breaks its rule (named in the message).
        """
        values = _check_body(body, LAUNCH_FIELDS)
        if values.get("space") is not None and values.get("preset") is not None:
            raise RequestError("give either space (YAML or JSON text) or preset (a bundled preset's name), "
                               "not both")
        if "warm_start" in values:
            for source in values["warm_start"].split(","):
                if not source.strip() or source.strip().startswith("-"):
                    raise RequestError(f"warm_start must name studies separated by commas, none empty or "
                                       f"starting with '-', but got {_shown(values['warm_start'])}")
        return cls(**values)

    def options(self) -> list[str]:
        """The plain options as ``--flag=value`` arguments (study, space, preset and data excluded)."""
        return _arguments(self, LAUNCH_FIELDS)


@dataclass(frozen=True)
class ResumeRequest:
    """A checked resume: a new budget and how to run it; ``None`` keeps the study's own."""

    trials: int | None = None
    timeout: float | None = None
    workers: int | None = None
    recycle_after: int | None = None
    max_worker_memory: float | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ResumeRequest:
        """Check a resume body field by field (see :meth:`LaunchRequest.parse`)."""
        return cls(**_check_body(body, RESUME_FIELDS))

    def options(self) -> list[str]:
        """The options as ``--flag=value`` arguments."""
        return _arguments(self, RESUME_FIELDS)


def _arguments(request: Any, specs: tuple[Field, ...]) -> list[str]:
    given = {item.name: getattr(request, item.name) for item in fields(request)}
    return [spec.argument(given[spec.name]) for spec in specs
            if spec.flag is not None and given.get(spec.name) is not None]


def run_arguments(request: LaunchRequest, *, study: str, space: str, data: str) -> list[str]:
    """``hpsearch`` arguments of a launch: options as ``--flag=value``, the space after ``--``."""
    return ["run", f"--study={study}", f"--data={data}", "--quiet", *request.options(), "--", space]


def resume_arguments(request: ResumeRequest, study: str) -> list[str]:
    """``hpsearch`` arguments of a resume: options as ``--flag=value``, the study after ``--``."""
    return ["resume", "--quiet", *request.options(), "--", study]


def _control_character(text: str, *, allow_newlines: bool) -> str | None:
    allowed = "\n\r\t" if allow_newlines else ""
    return next((char for char in text
                 if char not in allowed and unicodedata.category(char) in ("Cc", "Cs")), None)


def _shown(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut so the message stays one short line (a JSON array or object
    is only named: its repr could be as large, and as deep, as the body)."""
    if isinstance(value, (list, dict)):
        return "a JSON " + ("array" if isinstance(value, list) else "object")
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
