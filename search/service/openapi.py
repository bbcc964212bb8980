"""The OpenAPI 3.1 document of the JSON API, served at ``/api/openapi.json``.

Written out rather than generated: the handlers are plain functions over the CLI's listings, and a test
checks that every API route is described here and every path described is a route.
"""

from __future__ import annotations

from typing import Any

from .launch_fields import LAUNCH_FIELDS, RESUME_FIELDS, Field


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "study name, percent-encoded (a study the CLI named `a/b` is `a%2Fb`)"}
#: Trial numbers and model ids end where the store's integer columns do; a larger one is no such trial.
_ID = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_MODEL = {"name": "model_id", "in": "path", "required": True, "schema": _ID,
          "description": "id of a retrained model (from /models)"}
_UNKNOWN = _error("no such study (the message lists the existing ones)")
_BAD = _error("bad input: the CLI's one-sentence message")
_TOO_LARGE = _error("the request body is over HPSEARCH_MAX_REQUEST_BYTES (default 1 MiB)")


def _query(name: str, schema: dict[str, Any], description: str, *, many: bool = False) -> dict[str, Any]:
    if many:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            **({"style": "form", "explode": True} if many else {})}


#: Characters no text field may hold: the Unicode control characters (C0, DEL, C1).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
#: A text value: no control character, and starting with neither a space nor "-", so it can never read
#: as an option.
_VALUE = rf"^[^{_CONTROL}\s-][^{_CONTROL}]*$"
#: The space's YAML text: lines and tabs allowed, other control characters not, something visible.
_LINE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_TEXT = rf"^[^{_LINE}]*[^\s{_CONTROL}][^{_LINE}]*$"


def field_schema(spec: Field) -> dict[str, Any]:
    """The JSON Schema of one launch field: the very rule :meth:`Field.check` enforces."""
    schema: dict[str, Any] = {"type": spec.kind}
    if spec.kind == "string":
        choices = spec.allowed()
        if choices:
            schema["enum"] = list(choices)
        elif spec.name == "space":
            schema["pattern"] = _TEXT
        else:
            schema.update(pattern=f"^{spec.pattern}$" if spec.pattern else _VALUE, minLength=1,
                          maxLength=spec.max_length)
    else:
        if spec.low is not None:
            schema["exclusiveMinimum" if spec.low_exclusive else "minimum"] = _whole(spec.low)
        upper = spec.upper()
        if upper is not None:
            schema["maximum"] = _whole(upper)
    flag = f" (`{spec.flag}`)" if spec.flag else ""
    return {**schema, "description": spec.description + flag}


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def openapi_document() -> dict[str, Any]:
    """The document, with the limits in force now (an environment variable may have raised them)."""
    run_properties = {spec.name: field_schema(spec) for spec in LAUNCH_FIELDS}
    resume_properties = {spec.name: field_schema(spec) for spec in RESUME_FIELDS}
    states = {"type": "string", "enum": ["complete", "pruned", "failed", "running"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hpsearch",
            "version": _version(),
            "description": "Studies, trials and retrained models of an hpsearch store, whatever engine ran "
            "them; launching, stopping and resuming studies. Listings are those of the CLI's --json. "
            "When the server has a token, send it as 'Authorization: Bearer TOKEN'.",
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string", "description": "one sentence"}}},
                "Launch": {"type": "object", "properties": run_properties, "additionalProperties": False},
                "Resume": {"type": "object", "properties": resume_properties, "additionalProperties": False},
            },
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/health": {"get": {"summary": "the server is up; which store it reads",
                                    "responses": {"200": _ok("status and storage (password hidden)")}}},
            "/api/openapi.json": {"get": {"summary": "this document", "responses": {"200": _ok("OpenAPI")}}},
            "/api/options": {"get": {"summary": "what a launch may name: presets, datasets, files under "
                                     "--data-dir, engines, fields",
                                     "responses": {"200": _ok("choices")}}},
            "/api/studies": {
                "get": {"summary": "every study: engine, algorithm, objective, counts by state, best, "
                        "whether it runs (as `hpsearch studies --json`, plus `run`)",
                        "responses": {"200": _ok("studies", {"type": "array", "items": {"type": "object"}})}},
                "post": {
                    "summary": "launch a study: `hpsearch run` in a child process, detached from the request",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Launch"}}}},
                    "responses": {"202": _ok("the study was created and runs"), "400": _BAD,
                                  "409": _error("the study exists or is being launched"), "413": _TOO_LARGE,
                                  "500": _error("the launch failed at run time")},
                },
            },
            "/api/studies/{name}": {"get": {
                "summary": "one study: counts, best, run status, settings, space, dataset summary",
                "parameters": [_NAME], "responses": {"200": _ok("study"), "404": _UNKNOWN}}},
            "/api/studies/{name}/trials": {"get": {
                "summary": "trials, with the CLI's filters and sorting, paged",
                "parameters": [
                    _NAME,
                    _query("state", states, "only trials in these states (repeatable)", many=True),
                    _query("sort", {"type": "string", "enum": ["number", "value", "duration", "started"]},
                           "sort key (default number)"),
                    _query("desc", {"type": "boolean"}, "sort descending"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                    _query("offset", {"type": "integer", "minimum": 0}, "trials to skip"),
                    _query("curves", {"type": "boolean"}, "include per-epoch curves"),
                ],
                "responses": {"200": _ok("{study, total, offset, limit, trials}"), "400": _BAD,
                              "404": _UNKNOWN}}},
            "/api/studies/{name}/trials/{number}": {"get": {
                "summary": "one trial with its per-epoch curves",
                "parameters": [_NAME, {"name": "number", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": _ok("trial"), "404": _error("no such study or trial")}}},
            "/api/studies/{name}/best": {"get": {
                "summary": "the best K trials and retrained models (as `hpsearch best --json`)",
                "parameters": [_NAME, _query("top", {"type": "integer", "minimum": 1, "maximum": 100}, "K"),
                               _query("curves", {"type": "boolean"}, "include the top trials' curves")],
                "responses": {"200": _ok("best"), "400": _BAD,
                              "404": _error("no such study, or no completed trial yet")}}},
            "/api/studies/{name}/history": {"get": {
                "summary": "best so far in the order trials ended, against trials, seconds and epochs",
                "parameters": [_NAME], "responses": {"200": _ok("history"), "404": _UNKNOWN}}},
            "/api/studies/{name}/models": {"get": {
                "summary": "retrained models with their test metrics, newest first",
                "parameters": [_NAME], "responses": {"200": _ok("models"), "404": _UNKNOWN}}},
            "/api/studies/{name}/models/{model_id}": {"get": {
                "summary": "one retrained model: test metrics and model card",
                "parameters": [_NAME, _MODEL],
                "responses": {"200": _ok("model"), "404": _error("no such study or model")}}},
            "/api/studies/{name}/models/{model_id}/{file}": {"get": {
                "summary": "download model.keras or model.json (the card)",
                "parameters": [_NAME, _MODEL, {"name": "file", "in": "path", "required": True,
                                               "schema": {"type": "string",
                                                          "enum": ["model.keras", "model.json"]}}],
                "responses": {"200": {"description": "the file"},
                              "404": _error("no such study, model or file")}}},
            "/api/studies/{name}/stop": {"post": {
                "summary": "stop a study this server runs, as Ctrl-C: the trial in flight is recorded as "
                "interrupted and the study can be resumed; waits until that is recorded",
                "parameters": [_NAME],
                "responses": {"200": _ok("{stopped, exit_code, interrupted_trials}"), "404": _UNKNOWN,
                              "409": _error("not running, or run by another process")}}},
            "/api/studies/{name}/resume": {"post": {
                "summary": "resume a study: `hpsearch resume` in a child process",
                "parameters": [_NAME],
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Resume"}}}},
                "responses": {"202": _ok("resuming"), "400": _BAD, "404": _UNKNOWN, "413": _TOO_LARGE,
                              "409": _error("the study is running")}}},
            "/api/compare": {"get": {
                "summary": "studies side by side, any engines (as `hpsearch compare --json`), with their "
                "best-so-far histories and each study's best at equal epochs and training seconds",
                "parameters": [_query("study", {"type": "string"}, "a study (repeat for more)", many=True)],
                "responses": {"200": _ok("{studies, histories, equal_budget, notes}"), "400": _BAD,
                              "404": _UNKNOWN}}},
        },
        "security": [{"token": []}, {}],
    }


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("hpsearch")
    except metadata.PackageNotFoundError:
        return "unknown"
