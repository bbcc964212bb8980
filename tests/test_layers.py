"""The package's layers: imports only go down, and no files import each other in a circle.

Every module of ``search/``, ``spaces/`` and ``storage/`` is read as text (nothing is imported), its imports
are resolved to ``hpsearch`` module names, and each module is placed on a floor. A module may import a
module on its own floor or below, never above: an upward import is how a circle of files starts, and it is
the arrow a reader cannot follow down. Imports under ``if TYPE_CHECKING:`` count too: they tie the files
together for a reader just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The design card's folders and the installed package each becomes.
TREES = {"search": "hpsearch", "spaces": "hpsearch.spaces", "storage": "hpsearch.storage"}

#: Floors from the top down: the first prefix (longest match wins) that names a module places it.
FLOORS: list[tuple[str, ...]] = [
    ("hpsearch.cli", "hpsearch.cli_parser", "hpsearch.__main__", "hpsearch.service", "hpsearch.worker",
     "hpsearch.python_api", "hpsearch.study_handle"),
    ("hpsearch.study", "hpsearch.study_execution", "hpsearch.results"),
    ("hpsearch.study_report", "hpsearch.study_settings", "hpsearch.study_options", "hpsearch.warm_start",
     "hpsearch.study_inputs"),
    ("hpsearch.driver",),
    ("hpsearch.engines",),
    ("hpsearch.executors",),
    # liveness and the retry rule read and write the store only: every layer above applies them
    ("hpsearch.training", "hpsearch.recovery", "hpsearch.retry_policy"),
    ("hpsearch.data", "hpsearch.runtime"),
    ("hpsearch.spaces", "hpsearch.storage", "hpsearch.errors", "hpsearch.limits", "hpsearch.names",
     "hpsearch.progress", "hpsearch.interrupts", "hpsearch.seeds", "hpsearch.settings", "hpsearch"),
]


def _modules() -> dict[str, Path]:
    """Every module's ``hpsearch`` name and its file."""
    found = {}
    for folder, package in TREES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic loads these by path; they are not part of the import graph
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of this package that ``path`` imports (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            # ``from .x import name``: the module is ``x`` unless ``name`` is itself a module
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
                break
    return targets


def _floor(name: str) -> int:
    best, best_length = len(FLOORS), -1
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_every_module_is_on_a_floor() -> None:
    unplaced = sorted(name for name in _graph() if _floor(name) == len(FLOORS))
    assert not unplaced, f"modules on no floor (add them to FLOORS): {unplaced}"


def test_imports_only_go_down() -> None:
    graph = _graph()
    upward = sorted(
        f"{name} (floor {_floor(name)}) imports {target} (floor {_floor(target)})"
        for name, targets in graph.items()
        for target in targets
        # a package's __init__ re-exporting its own modules is not an upward import
        if _floor(target) < _floor(name) and not target.startswith(name + ".")
    )
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_circle_of_more_than_two_files() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 2:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"circles of files: {circles}"
