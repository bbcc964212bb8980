"""``hpsearch plot`` writes PNG files; ``plot`` and ``compare`` answer without loading TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plot_history_top_trials_and_retrain(cli, tiny_space, tmp_path, db_url):
    assert cli("run", tiny_space, "--data", "iris", "--trials", "3", "--study", "p", "--quiet",
               "--pruner", "none", "--in-process").code == 0
    result = cli("plot", "p", "--top", "2")
    assert result.code == 0, result.err
    written = sorted(path.name for path in (tmp_path / "plots" / "p").iterdir())
    assert written == ["history.png", "top-trials.png"]

    assert cli("retrain", "p", "--epochs", "4", "--quiet").code == 0
    result = cli("plot", "p", "--out", tmp_path / "figures")
    assert result.code == 0, result.err
    for name in ("history.png", "top-trials.png", "retrain.png"):
        image = (tmp_path / "figures" / name).read_bytes()
        assert image.startswith(PNG) and len(image) > 10_000
        assert str(tmp_path / "figures" / name) in result.out

    # Neither plotting nor comparing needs TensorFlow.
    code = (
        "import sys; from hpsearch.cli import main\n"
        f"assert main(['plot', 'p', '--out', {str(tmp_path / 'again')!r}, '--storage', {db_url!r}]) == 0\n"
        f"assert main(['compare', 'p', '--storage', {db_url!r}]) == 0\n"
        "print('HEAVY', [m for m in ('tensorflow', 'keras', 'optuna', 'sklearn') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_plot_of_a_study_without_trials_is_one_sentence(cli, db_url):
    from hpsearch.storage import open_storage

    open_storage(db_url).create_study("empty", engine="optuna", algorithm="tpe", objective="val_accuracy",
                         direction="maximize", space={}, dataset={}, settings={}, versions={})
    result = cli("plot", "empty")
    assert result.code == 1 and "no trials" in result.err and "Traceback" not in result.err
