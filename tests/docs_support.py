"""What tests/test_docs.py needs: the runnable blocks of the docs, running them, and building the site.

A fenced block directly after the line ``<!-- runnable -->`` is executed by the suite: all runnable blocks
of one page run in order in one fresh temporary folder, ``bash`` blocks with ``bash -e`` (the venv's
``bin`` first on PATH, so ``hpsearch`` is the one under test), ``python`` blocks each in a separate
process of the venv's Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MARKER = "<!-- runnable -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
#: The languages a runnable block may have, and how each runs.
LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python",
             "py": "python", "python3": "python"}


@dataclass(frozen=True)
class Block:
    """One runnable block: where it starts (1-based line of its fence), how it runs, its code."""

    line: int
    kind: str
    code: str


class RunnableMarkupError(ValueError):
    """A runnable marker that is not directly followed by a fenced block of a language the suite runs."""


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def runnable_blocks(text: str, where: str = "page") -> list[Block]:
    """The runnable blocks of a Markdown page, in order.

    Args:
        text: the page.
        where: the page's name, for the error message.

    Returns:
        The blocks.

    Raises:
        RunnableMarkupError: a marker not directly followed by a fenced bash or python block, or a block
            never closed.
    """
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        opening = _FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if not opening:
            raise RunnableMarkupError(f"{where} line {index + 1}: {MARKER} must be directly followed by a "
                                      "fenced ```bash or ```python block")
        kind = LANGUAGES.get(opening["lang"].lower())
        if kind is None:
            raise RunnableMarkupError(f"{where} line {index + 2}: a runnable block must be bash or python, "
                                      f"not {opening['lang']!r}")
        fence, indent = opening["fence"], len(opening["indent"])
        body = []
        for end in range(index + 2, len(lines)):
            candidate = lines[end]
            if candidate.strip().startswith(fence[0] * len(fence)) and not candidate.strip().strip(fence[0]):
                break
            body.append(candidate[indent:] if candidate[:indent].strip() == "" else candidate)
        else:
            raise RunnableMarkupError(f"{where} line {index + 2}: the runnable block is never closed")
        blocks.append(Block(index + 2, kind, "\n".join(body) + "\n"))
    return blocks


def block_env() -> dict[str, str]:
    """The environment a runnable block sees: a user's, with this venv's commands first on PATH."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # A block's commands use their own default store, hpsearch.db in the folder they run in.
    for name in ("HPSEARCH_STORAGE", "PYTHONPATH"):
        env.pop(name, None)
    return env


def run_blocks(blocks: list[Block], cwd: Path, where: str, timeout_s: float = 600) -> None:
    """Run blocks in order in ``cwd``; the first that exits non-zero raises with its output.

    Args:
        blocks: the page's runnable blocks.
        cwd: the fresh folder they share.
        where: the page's name, for the error message.
        timeout_s: the most seconds one block may take.

    Raises:
        AssertionError: a block exited non-zero (its line, code and output in the message).
    """
    env = block_env()
    with tempfile.TemporaryDirectory(prefix="hpsearch-doc-block-") as scripts:
        for number, block in enumerate(blocks, 1):
            script = Path(scripts) / f"block{number}.{'sh' if block.kind == 'bash' else 'py'}"
            script.write_text(block.code)
            command = ["bash", "-e", str(script)] if block.kind == "bash" else [sys.executable, str(script)]
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise AssertionError(
                    f"{where}: the runnable {block.kind} block at line {block.line} exited "
                    f"{done.returncode}\n"
                    f"--- block ---\n{block.code}--- stdout ---\n{done.stdout[-4000:]}\n"
                    f"--- stderr ---\n{done.stderr[-4000:]}")


def site_config(tmp: Path, docs_dir: Path | None = None) -> Path:
    """A copy of mkdocs.yml that builds ``docs_dir`` (default: the repository's docs/) into ``tmp/site``.

    Args:
        tmp: a temporary folder for the config and the site.
        docs_dir: the pages to build.

    Returns:
        The config file's path.
    """
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs_dir or REPO / "docs")
    config["site_dir"] = str(tmp / "site")
    config["hooks"] = [str(REPO / hook) for hook in config.get("hooks", [])]
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            python = plugin["mkdocstrings"]["handlers"]["python"]
            python["paths"] = [str(REPO / path) for path in python.get("paths", [])]
    path = tmp / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build_site(config: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` with ``config``, as ``make docs`` runs it."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run([str(mkdocs), "build", "--strict", "-f", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
