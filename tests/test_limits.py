"""Bounds on what one input may make hpsearch allocate or start (hpsearch.limits, hpsearch.spaces.limits).

Every limit refuses with one sentence naming the limit and the variable that raises it, exit 2, before
anything is started or created. The commands run with ``--dry-run`` wherever they can, so nothing trains;
the YAML bombs are loaded in a child process under a memory cap, so a regression fails the test instead
of exhausting the machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hpsearch.errors import UsageError
from hpsearch.limits import GRID_CANDIDATES, TRIALS, WORKERS, Limit
from hpsearch.spaces import SpaceError, load_space

ROOT = Path(__file__).resolve().parents[1]
#: No message quotes more than this of what the user gave.
SHORT = 400


def _one_sentence(result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err[:2000]
    assert lines[0].startswith("error: ")
    return lines[0]


def _nothing_created(cli) -> None:
    assert cli("studies", "--json").out.strip() in ("[]", ""), "nothing is created for refused input"


# -- the Limit class ---------------------------------------------------------------------------------

def test_a_limit_reads_its_variable_and_refuses_a_bad_one(monkeypatch):
    limit = Limit("widgets", 10, "HPSEARCH_TEST_WIDGETS")
    assert limit.value() == 10
    limit.check(10, "--widgets")
    with pytest.raises(UsageError, match=r"--widgets asks for 11 widgets, over the limit of 10; "
                                          r"set HPSEARCH_TEST_WIDGETS to raise it"):
        limit.check(11, "--widgets")
    monkeypatch.setenv("HPSEARCH_TEST_WIDGETS", "20")
    limit.check(11, "--widgets")
    monkeypatch.setenv("HPSEARCH_TEST_WIDGETS", "-3")
    with pytest.raises(UsageError, match="HPSEARCH_TEST_WIDGETS must be a positive integer"):
        limit.value()


# -- workers, trials, seed ---------------------------------------------------------------------------

def test_workers_over_the_limit_are_refused_before_any_process_starts(cli, monkeypatch):
    import hpsearch.study

    def no_workers(*args, **kwargs):
        raise AssertionError("a worker process was about to start")

    monkeypatch.setattr(hpsearch.study, "_early_workers", no_workers)
    too_many = WORKERS.value() + 1
    result = cli("run", "--workers", too_many, "--dry-run", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert f"--workers asks for {too_many} worker processes" in message and WORKERS.variable in message
    result = cli("run", "--workers", 10**6, "--quiet")  # not a dry run: refused all the same, nothing started
    assert result.code == 2
    _nothing_created(cli)


def test_the_workers_limit_can_be_raised(cli, monkeypatch):
    monkeypatch.setenv(WORKERS.variable, str(WORKERS.default + 10))
    assert cli("run", "--workers", WORKERS.default + 5, "--dry-run", "--quiet").code == 0


def test_resume_and_worker_check_workers_through_the_same_isolation():
    from hpsearch.engines.registry import get_engine
    from hpsearch.study_options import Isolation

    with pytest.raises(UsageError, match="--workers asks for 1000000 worker processes"):
        Isolation(workers=10**6).check(get_engine("optuna"))


def test_a_trial_budget_over_the_limit_is_refused(cli):
    result = cli("run", "--trials", 10**26, "--dry-run", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "--trials asks for" in message and TRIALS.variable in message


def test_resume_refuses_a_trial_budget_over_the_limit():
    from hpsearch.study_settings import run_budget as _budget

    with pytest.raises(UsageError, match="--trials asks for"):
        _budget(10**26, None, 5)
    assert _budget(10**26, None, 5, None).trials == 10**26  # an engine's plan is bounded by its own limit


@pytest.mark.parametrize("seed", [-1, 2**32, 10**40])
def test_a_seed_outside_32_bits_is_refused_up_front(cli, seed):
    result = cli("run", "--seed", seed, "--dry-run", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "--seed must be an integer from 0 to 4294967295" in message
    assert len(message) < 200
    _nothing_created(cli)


def test_the_largest_seed_is_accepted(cli):
    assert cli("run", "--seed", 2**32 - 1, "--dry-run", "--quiet").code == 0


# -- grids -------------------------------------------------------------------------------------------

HUGE_GRID = """\
params:
  n_neurons: {type: int, low: 1, high: 1000000}
  batch_size: {type: int, low: 1, high: 1000000}
"""


def test_a_grid_over_the_limit_is_counted_and_warned_about_in_a_dry_run(cli, tmp_path):
    space = tmp_path / "huge.yaml"
    space.write_text(HUGE_GRID)
    result = cli("run", space, "--algorithm", "grid", "--dry-run", "--quiet")
    assert result.code == 0, result.err
    assert "1000000000000 grid candidates" in result.out
    warning = next(line for line in result.out.splitlines() if line.startswith("warning:"))
    assert GRID_CANDIDATES.variable in warning and str(GRID_CANDIDATES.value()) in warning


@pytest.mark.parametrize(("engine", "algorithm"), [("optuna", "grid"), ("sklearn", "grid"),
                                                   ("sklearn", "halving-grid")])
def test_a_run_refuses_a_grid_over_the_limit_before_the_study_exists(cli, tmp_path, engine, algorithm):
    space = tmp_path / "huge.yaml"
    space.write_text(HUGE_GRID)
    result = cli("run", space, "--engine", engine, "--algorithm", algorithm, "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "huge.yaml" in message and "1000000000000 grid candidates" in message
    assert GRID_CANDIDATES.variable in message
    _nothing_created(cli)


def test_a_stepped_range_a_keras_tuner_choice_would_list_is_refused(cli, tmp_path):
    space = tmp_path / "fine.yaml"
    space.write_text("params:\n  dropout: {type: float, low: 0.0, high: 0.5, step: 1.0e-8}\n")
    result = cli("run", space, "--engine", "keras-tuner", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "'dropout' lists 50000001 values" in message and GRID_CANDIDATES.variable in message
    _nothing_created(cli)


def test_grid_size_counts_without_listing():
    from hpsearch.spaces import IntParam, SearchSpace

    space = SearchSpace(params={"n_neurons": IntParam("n_neurons", 1, 10**12),
                                "batch_size": IntParam("batch_size", 1, 10**12, step=7)})
    assert space.grid_size() == 10**12 * ((10**12 - 1) // 7 + 1)
    with pytest.raises(SpaceError, match="lists 1000000000000 values, over the limit"):
        space.params["n_neurons"].grid_values()


# -- the space file ----------------------------------------------------------------------------------

def _bomb(levels: int = 9, width: int = 9) -> str:
    """A billion-laughs document under ``fixed:``: ``width ** levels`` values from about 1 KB."""
    anchors = ["    - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        anchors.append(f"    - &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "fixed:\n  epochs:\n" + "\n".join(anchors) + "\n"


def _load_capped(path: Path) -> subprocess.CompletedProcess:
    """Load ``path`` in a child process whose address space is capped at 1 GiB and CPU at 60 s."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
        sys.path.insert(0, {str(ROOT)!r})
        from hpsearch.spaces import SpaceError, load_space
        try:
            load_space({str(path)!r})
        except SpaceError as error:
            print("refused:", error)
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_a_yaml_alias_bomb_is_refused_in_bounded_memory(tmp_path, suffix):
    path = tmp_path / f"bomb{suffix}"
    path.write_text(_bomb())
    assert path.stat().st_size < 1500
    result = _load_capped(path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip()
    assert line.startswith("refused:") and "aliases" in line and "HPSEARCH_MAX_SPACE_NODES" in line
    assert len(line) < SHORT


def test_a_yaml_bomb_is_refused_through_the_cli_with_one_short_sentence(cli, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels=6))  # small enough to be harmless on a loader without the limit
    result = cli("run", path, "--dry-run", "--quiet")
    assert result.code == 2
    message = _one_sentence(result)
    assert "bomb.yaml" in message and len(message) < SHORT


def test_more_aliases_than_the_limit_are_refused(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("fixed:\n  epochs: &e 3\n  batch_size: 4\nparams:\n  n_neurons:\n    type: categorical\n"
                    "    choices: [" + ", ".join(["*e"] * 101) + "]\n")
    with pytest.raises(SpaceError, match=r"aliases.yaml: uses more than 100 YAML aliases .*"
                                         r"HPSEARCH_MAX_YAML_ALIASES"):
        load_space(path)


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("fixed:\n  epochs: &a [*a]\n")
    with pytest.raises(SpaceError, match="holds a YAML alias inside its own anchor"):
        load_space(path)


@pytest.mark.parametrize(("name", "text"), [
    ("deep.yaml", "fixed:\n  epochs: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("deep.json", '{"fixed": {"epochs": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
])
def test_deep_nesting_is_refused(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpaceError, match="nests more than 64 levels deep"):
        load_space(path)


def test_a_space_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 110_000 + "fixed:\n  epochs: 3\n")
    with pytest.raises(SpaceError, match=r"big.yaml.* is \d+ bytes, over the limit of 1048576 .*"
                                         r"HPSEARCH_MAX_SPACE_BYTES"):
        load_space(path)
    monkeypatch.setenv("HPSEARCH_MAX_SPACE_BYTES", str(2 << 20))
    assert load_space(path).fixed == {"epochs": 3}


@pytest.mark.parametrize(("name", "text"), [
    ("long.yaml", "fixed:\n  activation: " + "x" * 500_000 + "\n"),
    ("long.json", '{"fixed": {"epochs": "' + "9" * 500_000 + '"}}'),
    ("list.yaml", "params:\n  n_neurons: {type: categorical, choices: [1, "
     + ", ".join(f"c{index}" for index in range(50_000)) + "]}\n"),
    ("key.json", '{"fixed": {"' + "k" * 500_000 + '": 1}}'),
    ("digits.json", '{"fixed": {"epochs": ' + "9" * 5000 + "}}"),
    ("spaces.yaml", "fixed:\n  activation: 'a" + " " * 30_000 + "x'\n"),
])
def test_messages_quote_at_most_a_short_value(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < SHORT + len(str(path)), message[:1000]
