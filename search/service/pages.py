"""The dashboard's pages: HTML shells from the package's ``static/`` folder, filled in by its scripts.

Every asset ships in the package (no CDN), so the dashboard works on a machine without internet and
loads nothing from anywhere else (the server's Content-Security-Policy allows only its own origin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Page routes and the HTML shell each serves; the scripts read the study name from the address.
PAGES = {
    "/": "studies.html",
    "/studies/{name}": "study.html",
    "/compare": "compare.html",
    "/studies/{name}/models/{model_id:int}": "model.html",
}


def page_routes() -> list[Any]:
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def page(file: str) -> Any:
        async def endpoint(request: Any) -> FileResponse:
            # Pages are tiny and change with the package: never serve a stale shell after an upgrade.
            return FileResponse(STATIC_DIR / file, media_type="text/html",
                                headers={"Cache-Control": "no-cache"})
        return endpoint

    return [
        *(Route(path, page(file)) for path, file in PAGES.items()),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
