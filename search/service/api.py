"""The JSON API: the CLI's listings over HTTP, and launching, stopping and resuming studies.

Read routes return what ``hpsearch studies|trials|best|compare --json`` print (the same functions build
them), plus what a dashboard needs beside that: run status, the best-so-far history and curves. Errors
are the CLI's one-sentence messages as ``{"error": ...}`` with 400 (bad input), 404 (unknown study,
trial or model; no completed trial yet), 409 (exists, running, or not running) or 500.

Handlers are plain functions: Starlette runs them in its thread pool, so a slow query or a stop that
waits for its trial to be recorded never blocks other requests. Reads that many dashboards poll at once
are cached for two seconds: twenty pollers cost the database what one does.
"""

from __future__ import annotations

import json
import math
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hpsearch.storage import (
    ModelRecord,
    Storage,
    StudyExistsError,
    StudyNotFoundError,
    StudyRecord,
    TrialNotFoundError,
    TrialRecord,
    TrialState,
)
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import HpsearchError, InputError, NoResultError, UsageError
from ..results.compare import UnknownStudyError, compare_studies
from ..results.queries import best_trials, json_safe, list_trials, model_dict, study_dict, trial_dict
from .launch_fields import LAUNCH_FIELDS, RESUME_FIELDS
from .launcher import Launcher, StudyBusyError

#: Seconds a read response is reused for identical requests: as long as the dashboard waits between
#: polls, so twenty open pages cost about one query per view and poll, not twenty.
CACHE_TTL_S = 2.0
#: Most trials one page of ``/trials`` returns.
MAX_PAGE = 1000
MAX_TOP = 100
#: Largest trial number or model id a URL may name: the store's integer columns end there, and a larger
#: number (10**21) would overflow the query instead of finding nothing.
MAX_ID = 2**31 - 1


class RequestTooLargeError(UsageError):
    """A request body over ``hpsearch.limits.REQUEST_BYTES``: answered 413 before it is read whole."""


class ModelNotFoundError(UsageError):
    """No retrained model with that id in the study, or its file is gone."""


class ApiContext:
    """What every handler needs: the store, the launcher, and how to hide the storage password."""

    def __init__(self, storage: Storage, launcher: Launcher, mask: Callable[[str], str]) -> None:
        self.storage = storage
        self.launcher = launcher
        self.mask = mask
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._cache_lock = threading.Lock()

    def hit(self, key: str) -> bytes | None:
        with self._cache_lock:
            hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def cached(self, key: str, build: Callable[[], Any]) -> bytes:
        now = time.monotonic()
        body = self.hit(key)
        if body is not None:
            return body
        body = self.encode(build())
        with self._cache_lock:
            if len(self._cache) > 512:  # many distinct queries: start over rather than grow without end
                self._cache.clear()
            self._cache[key] = (now + CACHE_TTL_S, body)
        return body

    def forget(self) -> None:
        """After a write: the next read shows it, not a second-old answer."""
        with self._cache_lock:
            self._cache.clear()

    def encode(self, data: Any) -> bytes:
        return self.mask(json.dumps(json_safe(data), allow_nan=False, separators=(",", ":"))).encode()


def status_of(error: BaseException) -> int:
    if isinstance(error, (StudyNotFoundError, UnknownStudyError, TrialNotFoundError, NoResultError,
                          ModelNotFoundError)):
        return 404
    if isinstance(error, (StudyExistsError, StudyBusyError)):
        return 409
    if isinstance(error, RequestTooLargeError):
        return 413
    if isinstance(error, InputError):
        return 400
    return 500


def error_response(error: BaseException, mask: Callable[[str], str]) -> JSONResponse:
    status = status_of(error)
    if not isinstance(error, HpsearchError):
        message = f"unexpected {type(error).__name__}: {error}"
    else:
        message = str(error)
    return JSONResponse({"error": mask(message)}, status_code=status)


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


# -- helpers --------------------------------------------------------------------------------------

def study_name(request: Request) -> str:
    """The study named in the path, decoded: a study made by the CLI may be named ``a/b`` (``a%2Fb`` in
    the URL; see ``hpsearch.service.app._StudyPath``, which keeps that segment encoded for routing)."""
    name = unquote(request.path_params["name"])
    _refuse_control(name, "the study name")
    return name


def _refuse_control(text: str, what: str) -> None:
    # A NUL byte cannot reach PostgreSQL at all (the driver refuses the query): a 400, not a 500.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise UsageError(f"{what} must not hold control characters, but got {text[:60]!r}")


def _path_id(request: Request, key: str, what: str) -> int:
    value = request.path_params[key]
    if value > MAX_ID:
        raise TrialNotFoundError(f"{what} must be at most {MAX_ID}, but got {str(value)[:40]}")
    return value


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be an integer, but got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, but got {value}")
    return value


def _bool_param(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise UsageError(f"{name} must be true or false, but got {text!r}")


def objective_curve(trial: TrialRecord, objective: str) -> list[float | None]:
    """The objective per epoch; for a cross-validated trial, the mean over its folds' curves."""
    if objective in trial.curves:
        return list(trial.curves[objective])
    folds = [values for name, values in trial.curves.items()
             if name.startswith("split") and name.endswith("_" + objective)
             and name[5:-len(objective) - 1].isdigit()]
    if not folds:
        return []
    curve: list[float | None] = []
    for epoch in range(max(len(values) for values in folds)):
        seen = [values[epoch] for values in folds
                if epoch < len(values) and values[epoch] is not None and math.isfinite(values[epoch])]
        curve.append(sum(seen) / len(seen) if seen else None)
    return curve


def study_history(study: StudyRecord, trials: Sequence[TrialRecord], folds: int = 1) -> dict[str, Any]:
    """Best-so-far in the order trials ended, against trial count, wall seconds, epochs and training
    seconds: what the study page plots and what compare lines up "at equal epochs or seconds"."""
    from ..results.plots import best_so_far

    finished = sorted((t for t in trials if t.state is not TrialState.RUNNING),
                      key=lambda t: (t.ended_at or t.started_at, t.number))
    start = min((t.started_at for t in trials), default=None)
    values = [t.value if t.state is TrialState.COMPLETE else None for t in finished]
    best = best_so_far(values, study.direction)
    points, epochs, seconds = [], 0, 0.0
    for trial, value, best_value in zip(finished, values, best, strict=True):
        if not trial.copied:  # a --warm-start copy was trained in its source study: free here
            epochs += trial.epochs_run * folds
            seconds += trial.duration_s or 0.0
        points.append({
            "number": trial.number,
            "state": trial.state,
            "copied": trial.copied,
            "value": value,
            "best": best_value,
            "wall_s": ((trial.ended_at or trial.started_at) - start).total_seconds() if start else 0.0,
            "epochs": epochs,
            "train_s": seconds,
        })
    return {"study": study.name, "objective": study.objective, "direction": study.direction,
            "folds_per_trial": folds, "points": points}


def _best_at(points: Sequence[dict[str, Any]], key: str, limit: float) -> float | None:
    best = None
    for point in points:
        if point[key] > limit + 1e-9:
            break
        best = point["best"]
    return best


def _summary(ctx: ApiContext, study: StudyRecord) -> dict[str, Any]:
    summaries = {s.study.name: s for s in ctx.storage.list_studies()}
    summary = summaries[study.name]
    data = study_dict(summary)
    data["run"] = ctx.launcher.status(study, summary.counts[TrialState.RUNNING])
    return data


def _model(storage: Storage, study: StudyRecord, model_id: int) -> ModelRecord:
    for model in storage.list_models(study.id):
        if model.id == model_id:
            return model
    raise ModelNotFoundError(f"study '{study.name}' has no retrained model {model_id}")


def _model_files(model: ModelRecord) -> tuple[Path, Path]:
    path = Path(model.path)
    card = (model.settings or {}).get("card")
    return path, Path(card) if card else path.with_name("model.json")


def _model_view(model: ModelRecord) -> dict[str, Any]:
    path, card = _model_files(model)
    return {"id": model.id, **model_dict(model), "model_available": path.is_file(),
            "card_available": card.is_file()}


# -- handlers -------------------------------------------------------------------------------------

def health(ctx: ApiContext, request: Request) -> Any:
    return {"status": "ok", "storage": ctx.storage.location.shown}


def studies(ctx: ApiContext, request: Request) -> Any:
    rows = []
    for summary in ctx.storage.list_studies():
        row = study_dict(summary)
        row["run"] = ctx.launcher.status(summary.study, summary.counts[TrialState.RUNNING])
        rows.append(row)
    return rows


def study(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    data = _summary(ctx, record)
    data.update(settings=record.settings, space=record.space, dataset=record.dataset,
                versions=record.versions, models=len(ctx.storage.list_models(record.id)))
    return data


def trials(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    limit = _int_param(request, "limit", None, 1, MAX_PAGE)
    offset = _int_param(request, "offset", 0, 0, 10**9) or 0
    states = request.query_params.getlist("state")
    curves = _bool_param(request, "curves")
    # The CLI's filters and sort; paging on top of its limit.
    rows = list_trials(ctx.storage, record, states=states, sort=request.query_params.get("sort", "number"),
                       descending=_bool_param(request, "desc"),
                       limit=None if limit is None else offset + limit, with_epochs=curves)
    counts = ctx.storage.count_trials(record.id)
    total = sum(counts[TrialState(s.upper())] for s in dict.fromkeys(states)) if states else sum(
        counts.values())
    return {"study": record.name, "total": total, "offset": offset, "limit": limit,
            "trials": [trial_dict(t, curves=curves) for t in rows[offset:]]}


def trial(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    number = _path_id(request, "number", "a trial number")
    found = ctx.storage.get_trial(record.id, number, with_epochs=True)
    data = trial_dict(found)
    data["objective_curve"] = objective_curve(found, record.objective)
    return data


def best(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    top = _int_param(request, "top", 1, 1, MAX_TOP) or 1
    ranked = best_trials(ctx.storage, record, top)
    models = list(reversed(ctx.storage.list_models(record.id)))
    shown = [trial_dict(t, curves=False) for t in ranked]
    if _bool_param(request, "curves"):
        for view, ranked_trial in zip(shown, ranked, strict=True):
            with_curves = ctx.storage.get_trial(record.id, ranked_trial.number, with_epochs=True)
            view["curves"] = with_curves.curves
            view["objective_curve"] = objective_curve(with_curves, record.objective)
    # The same object as `hpsearch best --json`.
    return {
        "study": record.name, "engine": record.engine, "algorithm": record.algorithm,
        "objective": record.objective, "direction": record.direction,
        **{key: shown[0][key] for key in ("number", "value", "params", "metrics", "copied_from")},
        "top": shown, "models": [_model_view(model) for model in models],
    }


def history(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    return study_history(record, ctx.storage.list_trials(record.id), _folds(record))


def _folds(record: StudyRecord) -> int:
    if record.engine != "sklearn":
        return 1
    from ..engines.sklearn.settings import cv_folds
    from ..settings import StudySettings

    return cv_folds(StudySettings.from_record(record.settings))


def compare(ctx: ApiContext, request: Request) -> Any:
    names = request.query_params.getlist("study")
    for name in names:
        _refuse_control(name, "study")
    if not names:
        raise UsageError("compare needs at least one study: /api/compare?study=A&study=B")
    rows = compare_studies(ctx.storage, names)
    histories = []
    for row in rows:
        record = ctx.storage.get_study(row["study"])
        histories.append(study_history(record, ctx.storage.list_trials(record.id), row["folds_per_trial"]))
    # Equal budgets: the most epochs (and training seconds) every study has spent, and each study's
    # best within that much, so a study is not ranked ahead only for having trained longer.
    equal: dict[str, Any] = {}
    for key, unit in (("epochs", "epochs"), ("train_s", "seconds")):
        spent = [h["points"][-1][key] for h in histories if h["points"]]
        if len(spent) == len(histories) and spent:
            limit = min(spent)
            equal[unit] = {"limit": limit,
                           "best": {h["study"]: _best_at(h["points"], key, limit) for h in histories}}
    notes = [rows[0]["scores_note"]] if rows else []
    if len({row["data_fingerprint"] for row in rows}) > 1:
        notes.append("these studies ran on different data; their scores are not comparable at all")
    if len({row["objective"] for row in rows}) > 1:
        notes.append("these studies optimise different objectives")
    return {"studies": rows, "histories": histories, "equal_budget": equal, "notes": notes}


def models(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    return [_model_view(model) for model in reversed(ctx.storage.list_models(record.id))]


def model(ctx: ApiContext, request: Request) -> Any:
    record = ctx.storage.get_study(study_name(request))
    found = _model(ctx.storage, record, _path_id(request, "model_id", "a model id"))
    view = _model_view(found)
    _, card_path = _model_files(found)
    view["card"] = None
    if card_path.is_file():
        try:
            view["card"] = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            view["card"] = None
    view.update(study=record.name, objective=record.objective, engine=record.engine,
                algorithm=record.algorithm)
    return view


def model_file(ctx: ApiContext, request: Request) -> Response:
    record = ctx.storage.get_study(study_name(request))
    found = _model(ctx.storage, record, _path_id(request, "model_id", "a model id"))
    model_path, card_path = _model_files(found)
    which = request.path_params["file"]
    path = model_path if which == "model.keras" else card_path
    if not path.is_file():
        raise ModelNotFoundError(f"the {which} of model {found.id} of study '{record.name}' is gone "
                                 f"from {path}")
    filename = f"{record.name}-trial-{found.trial_number}-{which}"
    media = "application/json" if which == "model.json" else "application/octet-stream"
    return FileResponse(path, media_type=media, filename=filename)


def presets(ctx: ApiContext, request: Request) -> Any:
    from hpsearch.spaces import list_presets

    from ..data import BUILTIN_DATASETS
    from ..engines.registry import available_engines

    return {"presets": list_presets(), "datasets": list(BUILTIN_DATASETS),
            "data_files": ctx.launcher.data_files(), "engines": list(available_engines()),
            "run_fields": [spec.name for spec in LAUNCH_FIELDS],
            "resume_fields": [spec.name for spec in RESUME_FIELDS]}


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        # Browsers send JSON across origins only after a CORS preflight this server never approves: a
        # page on another site cannot launch studies here through a visitor's browser.
        raise UsageError("the request body must be JSON, sent with Content-Type: application/json")
    raw = await _read_limited(request)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise UsageError("the request body is not valid JSON (or nests too deeply)") from None
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object")
    return body


async def _read_limited(request: Request) -> bytes:
    """The body, refused (413) when over the limit: by its Content-Length before reading, and by the
    bytes counted while reading, for a chunked body that announces no length (or a false one)."""
    from ..limits import REQUEST_BYTES

    limit = REQUEST_BYTES.value()
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise UsageError(f"Content-Length must be a number of bytes, but got {declared[:40]!r}")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, counted=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, *, counted: bool = False) -> RequestTooLargeError:
    from ..limits import REQUEST_BYTES

    return RequestTooLargeError(f"the request body has {'at least ' if counted else ''}{size} bytes, over "
                                f"the limit of {limit}; set {REQUEST_BYTES.variable} on the server to "
                                "raise it")


# -- routing --------------------------------------------------------------------------------------

def routes(ctx: ApiContext) -> list[Route]:
    from starlette.concurrency import run_in_threadpool

    def read(handler: Callable[[ApiContext, Request], Any], cache: bool = True) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            try:
                if cache:
                    key = request.url.path + "?" + str(request.query_params)
                    # A hit is answered on the event loop: handing it to a thread would cost more
                    # than the lookup, and many pollers make hits the common case.
                    body = ctx.hit(key)
                    if body is None:
                        body = await run_in_threadpool(ctx.cached, key, lambda: handler(ctx, request))
                    return _json(body)
                result = await run_in_threadpool(handler, ctx, request)
                return result if isinstance(result, Response) else _json(ctx.encode(result))
            except Exception as error:  # noqa: BLE001 - every error is one sentence and a status code
                return error_response(error, ctx.mask)
        return endpoint

    def write(action: Callable[[dict[str, Any], Request], Any], status: int) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await _body(request)
                result = await run_in_threadpool(action, body, request)
                return _json(ctx.encode(result), status)
            except Exception as error:  # noqa: BLE001
                return error_response(error, ctx.mask)
            finally:
                ctx.forget()
        return endpoint

    def launch(body: dict[str, Any], request: Request) -> Any:
        return ctx.launcher.launch(body)

    def stop(body: dict[str, Any], request: Request) -> Any:
        if body:
            raise UsageError(f"stop takes no fields, but got {', '.join(map(repr, body))}")
        return ctx.launcher.stop(study_name(request))

    def resume(body: dict[str, Any], request: Request) -> Any:
        return ctx.launcher.resume(study_name(request), body)

    def openapi(ctx: ApiContext, request: Request) -> Any:
        from .openapi import openapi_document

        return openapi_document()

    return [
        Route("/api/health", read(health, cache=False)),
        Route("/api/openapi.json", read(openapi, cache=False)),
        Route("/api/options", read(presets)),
        Route("/api/studies", read(studies), methods=["GET"]),
        Route("/api/studies", write(launch, 202), methods=["POST"]),
        Route("/api/studies/{name}", read(study)),
        Route("/api/studies/{name}/trials", read(trials)),
        Route("/api/studies/{name}/trials/{number:int}", read(trial)),
        Route("/api/studies/{name}/best", read(best)),
        Route("/api/studies/{name}/history", read(history)),
        Route("/api/studies/{name}/models", read(models)),
        Route("/api/studies/{name}/models/{model_id:int}", read(model)),
        Route("/api/studies/{name}/models/{model_id:int}/{file:str}",
              read(_file_guard(model_file), cache=False)),
        Route("/api/studies/{name}/stop", write(stop, 200), methods=["POST"]),
        Route("/api/studies/{name}/resume", write(resume, 202), methods=["POST"]),
        Route("/api/compare", read(compare)),
    ]


def _file_guard(handler: Callable[[ApiContext, Request], Response]) -> Callable[[ApiContext, Request], Any]:
    def guarded(ctx: ApiContext, request: Request) -> Any:
        if request.path_params["file"] not in ("model.keras", "model.json"):
            raise ModelNotFoundError(f"a model has two files, model.keras and model.json, not "
                                     f"{request.path_params['file']!r}")
        return handler(ctx, request)
    return guarded
