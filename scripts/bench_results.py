"""One result file per benchmark run: the tables a benchmark measured and how to make them again.

Every benchmark in ``scripts/`` writes its figures through :func:`write_result` into
``scripts/results/<name>.json``. The docs site renders these files into its benchmark pages (a page holds
``<!-- results: <name> -->`` where the tables go), so a figure is written once, by the run that measured
it, never by hand. Each file says the command, the commit, the date and the machine that made it.

The file's shape::

    {
      "name": "throughput-digits",
      "title": "Search throughput on digits",
      "command": "python scripts/bench_throughput.py --trials 40",
      "commit": "d856626",            # "-dirty" appended when the tree had uncommitted changes
      "date": "2026-12-06T04:10:00Z",
      "machine": {"cpu": "...", "cores": 2, "memory_gib": 23.4, "gpu": null, "platform": "Linux-..."},
      "versions": {"python": "3.11.2", "tensorflow": "...", "keras": "...", ...},
      "summary": "one or two sentences a user should conclude",
      "tables": [{"title": "...", "columns": ["...", ...], "rows": [[...], ...], "notes": "..."}],
      "figures": ["throughput-digits.png"],   # files beside the JSON in scripts/results/
      "data": {...}                            # anything else the benchmark keeps (raw timings, seeds)
    }
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"
_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "optuna", "scikit-learn", "scikeras",
             "sqlalchemy", "jax", "onnxruntime")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
          notes: str = "") -> dict[str, Any]:
    """One table of a result file.

    Args:
        title: what the table shows, one line.
        columns: the column headers.
        rows: the cells, one sequence per row, as long as ``columns``; numbers are kept as numbers
            (the page rounds them for display).
        notes: a sentence shown under the table (how a figure was derived, what a blank cell means).

    Returns:
        The table as the result file stores it.

    Raises:
        ValueError: a row is not as long as ``columns``.
    """
    for number, row in enumerate(rows, 1):
        if len(row) != len(columns):
            raise ValueError(f"table {title!r}: row {number} has {len(row)} cells, the header {len(columns)}")
    return {"title": title, "columns": list(columns), "rows": [list(row) for row in rows], "notes": notes}


def write_result(name: str, *, title: str, tables: Sequence[Mapping[str, Any]], summary: str = "",
                 figures: Sequence[str] = (), data: Mapping[str, Any] | None = None,
                 out_dir: Path = RESULTS, command: str | None = None) -> Path:
    """Write ``scripts/results/<name>.json`` with the run's tables and how it was made.

    Args:
        name: the file's name without ``.json`` (letters, digits and dashes); pages refer to it.
        title: the benchmark's title.
        tables: tables made by :func:`table`.
        summary: what a user should conclude from the figures, in the third person.
        figures: image files already written beside the result (names relative to ``out_dir``).
        data: raw figures the benchmark keeps for later analysis.
        out_dir: where to write (tests use a temporary folder).
        command: the command line to record; by default the one this process was started with.

    Returns:
        The path written.

    Raises:
        ValueError: ``name`` is not letters, digits and dashes.
    """
    if not name or not all(ch.isalnum() or ch == "-" for ch in name):
        raise ValueError(f"result name {name!r} must be letters, digits and dashes")
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "title": title,
        "command": command or _command(),
        "commit": _commit(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "versions": _versions(),
        "summary": summary,
        "tables": [dict(t) for t in tables],
        "figures": list(figures),
        "data": dict(data or {}),
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=_plain) + "\n")
    return path


def machine() -> dict[str, Any]:
    """The machine a benchmark runs on: CPU model, logical cores, memory, GPU (None without one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores,
            "memory_gib": memory_gib, "gpu": _gpu(), "platform": platform.platform()}


def _gpu() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return ", ".join(names) if out.returncode == 0 and names else None


def _command() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # Result files themselves do not make a run dirty: a run writes them.
    dirty = [line for line in git("status", "--porcelain").splitlines() if "scripts/results/" not in line]
    return commit + ("-dirty" if dirty else "")


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _plain(value: Any) -> Any:
    # NumPy scalars and arrays, paths: whatever a benchmark hands over becomes plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result file")
