"""``hpsearch serve``: the store over HTTP, a JSON API and a web dashboard, and a launcher of studies.

The server is a reader of the same store the CLI reads (through :mod:`hpsearch.results.queries` and
:mod:`hpsearch.results.compare`) and launches studies by running ``hpsearch run`` / ``hpsearch resume`` as
child
processes, so a study started from the browser is supervised exactly as one started in a terminal. It
never imports TensorFlow: starlette, uvicorn and the storage layer are all it loads.

    from . import ServeOptions, serve
    serve(ServeOptions(storage="sqlite:///hpsearch.db", port=8765))
"""

from __future__ import annotations

from .app import ServeOptions, create_app, serve

__all__ = ["ServeOptions", "create_app", "serve"]
