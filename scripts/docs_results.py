"""Benchmark result files rendered as Markdown for the docs site.

A page holds the line ``<!-- results: NAME -->`` where ``scripts/results/NAME.json`` (written by
``scripts/bench_results.py``) goes; ``scripts/docs_hooks.py`` replaces that line with :func:`render`: the
summary, each table (numbers rounded for reading), the figures, and one line saying the command, commit,
date and machine that made them. A name whose file is missing, or a file in the old format (no
``tables``), is a :class:`ResultFileError`, which the hook reports as a warning (the strict build fails).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The marker line; the name is letters, digits and dashes, as ``write_result`` allows.
MARKER = re.compile(r"^[ \t]*<!--\s*results:\s*([A-Za-z0-9-]+)\s*-->[ \t]*$", re.MULTILINE)


class ResultFileError(ValueError):
    """A results marker names a file that is missing or not in ``bench_results``' format."""


def referenced(markdown: str) -> list[str]:
    """The result names a page's markers refer to, in order.

    Args:
        markdown: the page's source.

    Returns:
        The names, each once.
    """
    return list(dict.fromkeys(MARKER.findall(markdown)))


def load(name: str, results_dir: Path) -> dict[str, Any]:
    """Read ``results_dir/NAME.json`` and check its shape.

    Args:
        name: the result's name.
        results_dir: ``scripts/results``.

    Returns:
        The result file's content.

    Raises:
        ResultFileError: the file is missing, not JSON, or has no ``tables`` (the old format).
    """
    path = results_dir / f"{name}.json"
    if not path.is_file():
        raise ResultFileError(f"result file scripts/results/{name}.json does not exist; run the benchmark "
                              "that writes it (scripts/bench_*.py) and commit the file")
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ResultFileError(f"result file scripts/results/{name}.json is not readable JSON: "
                              f"{error}") from None
    if not isinstance(result, dict) or not isinstance(result.get("tables"), list):
        raise ResultFileError(f"result file scripts/results/{name}.json has no 'tables' list; it must be "
                              "written by scripts/bench_results.py's write_result")
    for table in result["tables"]:
        if not isinstance(table, dict) or not isinstance(table.get("columns"), list) \
                or not isinstance(table.get("rows"), list):
            raise ResultFileError(f"result file scripts/results/{name}.json has a table without "
                                  "'columns' and 'rows' lists")
    return result


def figures(result: dict[str, Any]) -> list[str]:
    """The figure files a result names (relative to ``scripts/results``)."""
    return [str(name) for name in result.get("figures") or []]


def number(value: Any) -> str:
    """A cell as a reader wants it: floats to three significant figures (at least a whole number),
    integers with thousands separators, booleans as yes/no, a missing value as a blank.

    Args:
        value: the cell as the result file stores it.

    Returns:
        The text of the cell.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude == 0:
            return "0"
        digits = max(0, 2 - math.floor(math.log10(magnitude)))
        return f"{value:.{digits}f}"
    return str(value)


def _cell(value: Any) -> str:
    return " ".join(number(value).replace("|", r"\|").split())


def machine(result: dict[str, Any]) -> str:
    """The machine a result was measured on, in one phrase (CPU, cores, memory, GPU)."""
    info = result.get("machine") or {}
    parts = [str(info.get("cpu") or "unknown CPU")]
    if info.get("cores"):
        parts.append(f"{info['cores']} cores")
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']} GiB memory")
    parts.append(f"GPU {info['gpu']}" if info.get("gpu") else "no GPU")
    return ", ".join(parts)


def render(result: dict[str, Any], figure_link: Callable[[str], str]) -> str:
    """The Markdown of one result: summary, tables, figures and where they came from.

    Args:
        result: a result file's content, as :func:`load` returns it.
        figure_link: maps a figure's file name to the link the page should use.

    Returns:
        Markdown to put in place of the marker.
    """
    lines: list[str] = []
    if result.get("summary"):
        lines += [str(result["summary"]), ""]
    for table in result["tables"]:
        if table.get("title"):
            lines += [f"**{table['title']}**", ""]
        lines.append("| " + " | ".join(_cell(column) for column in table["columns"]) + " |")
        lines.append("|" + "|".join(" --- " for _ in table["columns"]) + "|")
        for row in table["rows"]:
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
        lines.append("")
        if table.get("notes"):
            lines += [str(table["notes"]), ""]
    for name in figures(result):
        lines += [f"![{result.get('title') or name}]({figure_link(name)})", ""]
    lines.append(f"*Made by `{result.get('command', '?')}` at commit `{result.get('commit', '?')}` on "
                 f"{result.get('date', '?')}, on {machine(result)}.*")
    return "\n".join(lines) + "\n"
