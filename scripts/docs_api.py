"""The Python API reference: one mkdocstrings entry per name ``hpsearch`` exports, and a check of their
docstrings.

The docs site's ``reference/api.md`` holds the line ``<!-- api-reference -->``; at build time
``scripts/docs_hooks.py`` replaces it with :func:`api_reference` (a ``::: hpsearch.NAME`` block for each
name of ``hpsearch.__all__``, so a new export appears without editing the page) and reports every
:func:`problems` entry as a warning, which fails the strict build.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Google-style section headers the docstrings use.
_SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Yields|Raises|Attributes):\s*$", re.MULTILINE)


def exported(init: Path = ROOT / "search" / "__init__.py") -> list[str]:
    """The names ``hpsearch`` exports: its ``__all__``, read from the source without importing it.

    Args:
        init: ``search/__init__.py``.

    Returns:
        The names in ``__all__`` order.

    Raises:
        ValueError: the file has no literal ``__all__`` list.
    """
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [ast.literal_eval(element) for element in node.value.elts]  # type: ignore[attr-defined]
    raise ValueError(f"{init} has no literal __all__ list")


def api_reference(names: list[str]) -> str:
    """The Markdown that makes mkdocstrings document each exported name under its ``hpsearch.`` path.

    Args:
        names: the exported names.

    Returns:
        One ``::: hpsearch.NAME`` block per name.
    """
    return "\n".join(f"::: hpsearch.{name}\n" for name in names)


def _sections(docstring: str) -> set[str]:
    return {"Args" if name == "Arguments" else name for name in _SECTION.findall(docstring)}


def _check_function(path: str, function: object, problems: list[str]) -> None:
    docstring = getattr(function, "docstring", None)
    text = docstring.value if docstring else ""
    if not text.strip():
        problems.append(f"{path} has no docstring")
        return
    found = _sections(text)
    parameters = [p.name for p in function.parameters  # type: ignore[attr-defined]
                  if p.name not in ("self", "cls")]
    if parameters and "Args" not in found:
        problems.append(f"{path} takes {', '.join(parameters)} but its docstring has no Args: section")
    returns = function.returns  # type: ignore[attr-defined]
    name = path.rpartition(".")[2]
    is_property = "property" in function.labels  # type: ignore[attr-defined]
    if returns is not None and str(returns) != "None" and name != "__init__" and not is_property \
            and not ({"Returns", "Yields"} & found):
        problems.append(f"{path} returns {returns} but its docstring has no Returns: section")


def problems(names: list[str], package_name: str = "hpsearch",
             search_paths: list[str] | None = None) -> list[str]:
    """Exported names whose documentation falls short, one sentence each.

    A function needs a docstring, an ``Args:`` section when it takes arguments and a ``Returns:`` section
    when it returns something; a class needs a docstring, and so does each of its public methods and
    properties (held to the same rule as functions).

    Args:
        names: the exported names.
        package_name: the package that exports them.
        search_paths: where to look for the package (default: ``sys.path``, where ``hpsearch`` is
            installed).

    Returns:
        The problems found; empty when every name is documented.
    """
    import griffe

    package = griffe.load(package_name, search_paths=search_paths, resolve_aliases=True,
                          resolve_external=False)
    found: list[str] = []
    for name in names:
        path = f"{package_name}.{name}"
        try:
            target = package[name]
            target = target.final_target if target.is_alias else target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            found.append(f"{path} is in __all__ but cannot be found")
            continue
        if target.is_function:
            _check_function(path, target, found)
        elif target.is_class:
            if not (target.docstring and target.docstring.value.strip()):
                found.append(f"{path} has no docstring")
            for member_name, member in target.members.items():
                if member_name.startswith("_") or member.is_alias:
                    continue
                if member.is_function:
                    _check_function(f"{path}.{member_name}", member, found)
                elif member.is_attribute and "property" in member.labels and not (
                        member.docstring and member.docstring.value.strip()):
                    found.append(f"{path}.{member_name} has no docstring")
        elif not (target.docstring and target.docstring.value.strip()):
            found.append(f"{path} has no docstring")
    return found
