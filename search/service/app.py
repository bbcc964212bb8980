"""The ASGI application of ``hpsearch serve`` and the uvicorn server around it.

Security rules, all enforced here:

- the server binds to loopback unless told otherwise, and a non-loopback ``--host`` needs a token
  (``--token`` or ``HPSEARCH_TOKEN``); when a token is set, every request must carry it (``Authorization:
  Bearer T``, or the cookie a page visit with ``?token=T`` sets), compared in constant time;
- on loopback, a request must name a loopback host in its ``Host`` header, so a web page whose domain
  was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the API through a visitor's browser;
- writes take JSON only (see :mod:`hpsearch.service.api`) and pages may not be framed;
- the storage password is masked in every response and log line (``***``).

On Ctrl-C or SIGTERM, uvicorn stops taking requests; then every study this server launched is
interrupted like a Ctrl-C in its terminal (the trial in flight is recorded as interrupted, the study
stays resumable), so nothing the server started keeps training unsupervised after it is gone.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from ..errors import UsageError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "HPSEARCH_TOKEN"
TOKEN_COOKIE = "hpsearch_token"
#: Shorter tokens can be guessed over a network.
MIN_TOKEN_LENGTH = 16
#: Seconds uvicorn waits for requests in flight when asked to stop.
GRACEFUL_SHUTDOWN_S = 5


@dataclass
class ServeOptions:
    """What ``hpsearch serve`` was asked to do."""

    storage: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    data_dir: str | os.PathLike[str] | None = None

    def check(self) -> None:
        """Refuse options that would expose the store or cannot work, before anything is opened."""
        if not 1 <= self.port <= 65535:
            raise UsageError(f"--port must be between 1 and 65535, but got {self.port}")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise UsageError(
                f"the token must be at least {MIN_TOKEN_LENGTH} characters, but it has {len(self.token)}; "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        if not is_loopback(self.host) and self.token is None:
            raise UsageError(
                f"--host {self.host} is reachable from other machines, so it needs a token: pass --token "
                f"or set {TOKEN_ENV} (or serve on 127.0.0.1 and reach it through an SSH tunnel)"
            )
        from ..limits import REQUEST_BYTES, TRIALS, WORKERS

        for limit in (REQUEST_BYTES, TRIALS, WORKERS):
            limit.value()  # a malformed HPSEARCH_MAX_* is refused now, not on every request
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UsageError(f"--data-dir {os.fspath(self.data_dir)!r} is not a directory")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def password_mask(url: str) -> Callable[[str], str]:
    """A function that replaces by ``***`` the storage URL's password, in any spelling, and the password
    of any other ``scheme://user:password@`` URL, in a text: :func:`hpsearch.storage.credentials.masker`."""
    from hpsearch.storage.credentials import masker

    return masker(url)


class _StudyPath:
    """ASGI middleware: a study name in the path (``/api/studies/NAME/...``, ``/studies/NAME/...``) is
    routed by its still-encoded segment, so a study the CLI named ``a/b`` is reached as ``a%2Fb``.

    Uvicorn decodes ``%2F`` to ``/`` before routing, which would split the name in two; the raw path
    keeps it. The name's segment is re-encoded in one canonical form and the handlers decode it once
    (``hpsearch.service.api.study_name``).
    """

    PREFIXES = (("api", "studies"), ("studies",))

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = _route_path(scope)
            if path is not None:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def _route_path(scope: dict[str, Any]) -> str | None:
    raw = scope.get("raw_path")
    if raw:
        segments = raw.decode("utf-8", "replace").split("?", 1)[0].split("/")
    else:  # a server that gives no raw path: the decoded one, where a "/" in a name is already lost
        segments = [quote(segment, safe="") for segment in scope["path"].split("/")]
    decoded = [unquote(segment) for segment in segments]
    for prefix in _StudyPath.PREFIXES:
        at = 1 + len(prefix)
        if tuple(decoded[1:at]) == prefix and len(segments) > at and segments[at]:
            # The name stays encoded (one canonical way); every other segment is decoded as usual.
            return "/".join([*decoded[:at], quote(decoded[at], safe=""), *decoded[at + 1:]])
    return None


class _Gate:
    """ASGI middleware: Host header check on loopback, token check when a token is set."""

    def __init__(self, app: Any, *, token: str | None, allowed_hosts: set[str] | None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

        headers = Headers(scope=scope)
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            await PlainTextResponse("this server answers only to loopback host names", 400)(
                scope, receive, send)
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = _bearer(headers.get("authorization", "")) or _cookie(headers.get("cookie", ""))
        from_query = given is None and "token" in query
        if from_query:
            given = query["token"]
        # compare_digest takes as long for a wrong token as for a right one of the same length.
        if not hmac.compare_digest((given or "").encode(), self.token):
            message = ("missing or wrong token: send 'Authorization: Bearer TOKEN', or open a page once "
                       "with ?token=TOKEN")
            if scope["path"].startswith("/api/"):
                response: Any = JSONResponse({"error": message}, 401,
                                             headers={"WWW-Authenticate": "Bearer"})
            else:
                response = PlainTextResponse(message, 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        if from_query and scope["method"] == "GET" and not scope["path"].startswith("/api/"):
            # A page opened with ?token=T: keep the token in a cookie and drop it from the address bar,
            # so it does not linger in history or get copied with the link.
            rest = urlencode([(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"))
                              if k != "token"])
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(TOKEN_COOKIE, query["token"], httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookie(header: str) -> str | None:
    if not header:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:  # noqa: BLE001 - a malformed cookie header is simply no token
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel.value if morsel is not None else None


class _SecurityHeaders:
    """Pages load only their own assets and may not be framed (a framed Stop button could be clicked
    by a page that hides it)."""

    POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
              "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", self.POLICY.encode()),
                            (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(options: ServeOptions) -> ASGIApp:
    """The ASGI application for ``options`` (already checked): opens the store, and on shutdown stops
    the studies it launched."""
    from hpsearch.storage import StoreLocation, open_storage
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response

    from .api import ApiContext, routes
    from .launcher import Launcher
    from .pages import page_routes

    location = StoreLocation.parse(options.storage)
    mask = password_mask(location.url)
    storage = open_storage(location)
    launcher = Launcher(storage, data_dir=Path(options.data_dir) if options.data_dir else None, mask=mask)
    ctx = ApiContext(storage, launcher, mask)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            from starlette.concurrency import run_in_threadpool

            stopped = await run_in_threadpool(launcher.shutdown)
            for name in stopped:
                print(f"stopped study '{name}' (interrupted; resume it with "
                      f"`hpsearch resume {shlex.quote(name)}`)", file=sys.stderr)
            storage.close()
            shutil.rmtree(launcher.workdir, ignore_errors=True)

    async def not_found(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        detail = error.detail if isinstance(error, HTTPException) else "internal error"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"{detail}: {request.method} {request.url.path}"}, status)
        return PlainTextResponse(f"{detail}: {request.url.path}", status)

    app = Starlette(routes=[*routes(ctx), *page_routes()], lifespan=lifespan,
                    exception_handlers={HTTPException: not_found})
    app.state.api = ctx
    bound = f"[{options.host.strip('[]')}]" if ":" in options.host else options.host
    allowed = {"localhost", "127.0.0.1", "[::1]", bound} if is_loopback(options.host) else None
    return _SecurityHeaders(_Gate(_StudyPath(app), token=options.token, allowed_hosts=allowed))


class _MaskFilter(logging.Filter):
    """Log lines go through the same mask as responses; a token typed in a page address too."""

    def __init__(self, mask: Callable[[str], str], token: str | None) -> None:
        super().__init__()
        self.mask = mask
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        def clean(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            value = self.mask(value)
            return value.replace(self.token, "***") if self.token else value

        record.msg = clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(clean(arg) for arg in record.args)
        return True


def serve(options: ServeOptions) -> None:
    """Run the server until Ctrl-C or SIGTERM; returns after the launched studies are stopped."""
    import uvicorn
    from hpsearch.storage import StoreLocation

    options.check()
    app = create_app(options)
    location = StoreLocation.parse(options.storage)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="info", access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on", server_header=False,
    )
    server = uvicorn.Server(config)
    log_filter = _MaskFilter(password_mask(location.url), options.token)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(log_filter)
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    print(f"hpsearch serve: {location.shown} at http://{shown_host}:{options.port}/"
          + (" (token required)" if options.token else ""), file=sys.stderr, flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it handled once shutdown is done; the shutdown was clean
    print("hpsearch serve: stopped", file=sys.stderr, flush=True)
