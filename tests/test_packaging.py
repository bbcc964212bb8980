"""What ``pip install hpsearch`` puts into an environment: one import package, ``hpsearch``, with its data.

The wheel is built from a copy of the checkout (so the build leaves nothing in it) and checked against the
folders it comes from: every package folder of ``search/``, ``spaces/`` and ``storage/`` and every data file
(presets, bundled CSVs, the dashboard's static files, the migrations) must be inside, under ``hpsearch``,
and nothing else at the top level. The slow test installs the wheel, not editable, into a fresh virtual
environment and runs a search from a folder outside the checkout, where ``import search`` must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The design card's folders and the installed package each becomes.
FOLDERS = {"search": "hpsearch", "spaces": "hpsearch/spaces", "storage": "hpsearch/storage"}
DATA_SUFFIXES = {".csv", ".yaml", ".json", ".html", ".js", ".css", ".svg", ".mako"}


def _expected_files() -> set[str]:
    """The wheel paths of every Python module and data file in the source folders."""
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            relative = path.relative_to(ROOT / folder)
            if path.suffix == ".py" or path.suffix in DATA_SUFFIXES:
                expected.add(f"{package}/{relative.as_posix()}")
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout's tracked layout."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", *FOLDERS):
        target = source / name
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, target)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("hpsearch-*.whl")
    return built


def test_the_wheel_installs_one_package_named_hpsearch(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"hpsearch"}
    entry_points = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith(".dist-info/entry_points.txt"))).decode()
    assert "hpsearch = hpsearch.cli:main" in entry_points


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_expected_files() - names)
    assert not missing, f"missing from the wheel (add the package to pyproject.toml): {missing[:10]}"
    for needed in ("hpsearch/datasets/imbalanced.csv", "hpsearch/spaces/presets/default.yaml",
                   "hpsearch/service/static/study.html",
                   "hpsearch/storage/migrations/versions/0001_initial.py"):
        assert needed in names


@pytest.mark.slow
def test_installed_not_editable_it_runs_a_search_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True, timeout=300)
    python = environment / "bin" / "python"
    site_packages = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies (TensorFlow and the rest) come from the suite's own environment, read as a plain
    # path entry: its .pth files, among them the editable install of this checkout, are not processed.
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HPSEARCH_STORAGE")}

    where = subprocess.run([python, "-c", "import hpsearch; print(hpsearch.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site_packages)
    for old_name in ("search", "spaces", "storage"):
        refused = subprocess.run([python, "-c", f"import {old_name}"], cwd=elsewhere, env=env,
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and "ModuleNotFoundError" in refused.stderr, old_name

    run = subprocess.run([environment / "bin" / "hpsearch", "run", "--data", "iris", "--trials", "1",
                          "--study", "installed", "--storage", "installed.db", "--quiet"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    best = subprocess.run([environment / "bin" / "hpsearch", "best", "installed", "--storage", "installed.db",
                           "--json"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert best.returncode == 0 and '"number": 0' in best.stdout, best.stderr[-2000:]
