"""``hpsearch serve``: the store over HTTP, a JSON API and a web dashboard, and a launcher of studies.

The server is a reader of the same store the CLI reads (through :mod:`search.queries` and
:mod:`search.compare`) and launches studies by running ``hpsearch run`` / ``hpsearch resume`` as child
processes, so a study started from the browser is supervised exactly as one started in a terminal. It
never imports TensorFlow: starlette, uvicorn and the storage layer are all it loads.

    from search.service import ServeOptions, serve
    serve(ServeOptions(storage="sqlite:///hpsearch.db", port=8765))
"""

from __future__ import annotations

from search.service.app import ServeOptions, create_app, serve

__all__ = ["ServeOptions", "create_app", "serve"]
