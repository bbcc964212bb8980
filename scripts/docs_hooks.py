"""MkDocs hooks (``hooks:`` in mkdocs.yml): the parts of the docs site generated from the code at build time.

Three marker lines, each alone on its line in a page, are replaced before the page is converted:

- ``<!-- cli-reference -->``: the CLI reference, from ``hpsearch.cli.build_parser()``
  (``scripts/docs_cli.py``). An argument without help text is a warning.
- ``<!-- api-reference -->``: a ``::: hpsearch.NAME`` block per name in ``hpsearch.__all__``, which
  mkdocstrings renders from the docstrings (``scripts/docs_api.py``). A missing docstring, or one without
  the ``Args:``/``Returns:`` sections its function needs, is a warning.
- ``<!-- results: NAME -->``: the tables of ``scripts/results/NAME.json`` (``scripts/docs_results.py``),
  its figures copied into the site under ``assets/results/``. A missing or old-format file is a warning.

``mkdocs build --strict`` (``make docs``, and ``tests/test_docs.py``) turns every warning into a failed
build, so an undocumented option, export or a missing result file cannot reach the site.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import docs_api, docs_cli, docs_results  # noqa: E402

log = get_plugin_logger("hpsearch-docs")

CLI_MARKER = re.compile(r"^[ \t]*<!--\s*cli-reference\s*-->[ \t]*$", re.MULTILINE)
API_MARKER = re.compile(r"^[ \t]*<!--\s*api-reference\s*-->[ \t]*$", re.MULTILINE)
#: Where result figures land in the site.
FIGURES = "assets/results"
RESULTS = ROOT / "scripts" / "results"

#: mkdocstrings (griffe) finds a package by its folder's name, and ``hpsearch`` lives in ``search/``: the
#: build reads it through the link ``build/docs-api/hpsearch -> search`` (mkdocs.yml's handler ``paths``).
API_PATH = ROOT / "build" / "docs-api"

_cache: dict[str, Any] = {}


def api_search_path() -> Path:
    """Make ``build/docs-api/hpsearch`` a link to ``search/`` (atomically: builds may run side by side).

    Returns:
        ``build/docs-api``, the folder to hand griffe as its search path.
    """
    link = API_PATH / "hpsearch"
    if link.is_symlink() and link.resolve() == (ROOT / "search").resolve():
        return API_PATH
    API_PATH.mkdir(parents=True, exist_ok=True)
    staging = API_PATH / f".hpsearch-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(Path("..", "..", "search"), target_is_directory=True)
    os.replace(staging, link)
    return API_PATH


api_search_path()  # before mkdocstrings looks for the package


def on_startup(command: str, dirty: bool) -> None:
    """A fresh build (``mkdocs serve`` rebuilds in one process) regenerates everything."""
    _cache.clear()


def on_pre_build(config: Any) -> None:
    """Each build of ``mkdocs serve`` reads the parser, the exports and the result files again."""
    _cache.clear()


def on_files(files: Files, config: Any) -> Files:
    """Add the figures of every result a page refers to, so that the site carries them."""
    wanted: set[str] = set()
    for page in files.documentation_pages():
        try:
            source = Path(page.abs_src_path).read_text(encoding="utf-8") if page.abs_src_path else ""
        except OSError:
            continue
        for name in docs_results.referenced(source):
            try:
                wanted.update(docs_results.figures(docs_results.load(name, RESULTS)))
            except docs_results.ResultFileError:
                continue  # reported on the page that names it
    for figure in sorted(wanted):
        path = RESULTS / figure
        if path.is_file():
            files.append(File.generated(config, f"{FIGURES}/{figure}", abs_src_path=str(path)))
    return files


def _cli_markdown() -> str:
    if "cli" not in _cache:
        from hpsearch.cli import build_parser

        parser = build_parser()
        for argument in docs_cli.undocumented(parser):
            log.warning(f"CLI reference: {argument} has no help text; give it help= in search/cli.py")
        _cache["cli"] = docs_cli.cli_reference(parser)
    return _cache["cli"]


def _api_markdown() -> str:
    if "api" not in _cache:
        names = docs_api.exported()
        for problem in docs_api.problems(names, search_paths=[str(api_search_path())]):
            log.warning(f"API reference: {problem}")
        _cache["api"] = docs_api.api_reference(names)
    return _cache["api"]


def _results_markdown(name: str, page: Any) -> str:
    try:
        result = docs_results.load(name, RESULTS)
    except docs_results.ResultFileError as error:
        log.warning(f"{page.file.src_uri}: <!-- results: {name} -->: {error}")
        return f'!!! failure "Missing benchmark result"\n    {error}\n'
    here = posixpath.dirname(page.file.src_uri)

    def link(figure: str) -> str:
        if not (RESULTS / figure).is_file():
            log.warning(f"{page.file.src_uri}: result {name} names figure scripts/results/{figure}, "
                        "which does not exist")
        return posixpath.relpath(f"{FIGURES}/{figure}", here or ".")

    return docs_results.render(result, link)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace the marker lines with the generated CLI reference, API reference and result tables."""
    markdown = CLI_MARKER.sub(lambda _: _cli_markdown(), markdown)
    markdown = API_MARKER.sub(lambda _: _api_markdown(), markdown)
    return docs_results.MARKER.sub(lambda match: _results_markdown(match.group(1), page), markdown)

