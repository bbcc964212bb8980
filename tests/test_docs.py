"""The docs: the site builds strictly with its generated references and benchmark tables, a broken link or a
missing result fails it, and every block marked runnable runs as a user would run it."""

from __future__ import annotations

import argparse
import html
import re
import shutil
from pathlib import Path

import pytest

from scripts import docs_api, docs_cli, docs_results
from scripts.bench_results import table, write_result
from tests.docs_support import (
    MARKER,
    REPO,
    Block,
    RunnableMarkupError,
    build_site,
    doc_pages,
    run_blocks,
    runnable_blocks,
    site_config,
)


def _text(path: Path) -> str:
    """A built page's text: tags dropped, entities decoded, white space collapsed."""
    page = re.sub(r"<script.*?</script>", " ", path.read_text(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real docs built strictly, once for this module's tests."""
    tmp = tmp_path_factory.mktemp("site")
    done = build_site(site_config(tmp))
    assert done.returncode == 0, (
        f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return tmp / "site"


@pytest.mark.xdist_group("docs-build")
def test_strict_build_documents_every_cli_argument(site: Path) -> None:
    from hpsearch.cli import build_parser

    text = _text(site / "reference" / "cli.html")
    for name, command in docs_cli.commands(build_parser()):
        assert f"{name} ¶" in text or name in text, f"{name} is missing from the CLI reference"
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = ", ".join(action.option_strings) or action.metavar or action.dest
            help_text = " ".join(action.help.split())
            assert f"{label} " in text and help_text[:60] in text, f"{name} {label} is missing or has no help"


@pytest.mark.xdist_group("docs-build")
def test_strict_build_documents_every_export_with_its_docstring(site: Path) -> None:
    import hpsearch

    page = (site / "reference" / "api.html").read_text()
    text = _text(site / "reference" / "api.html")
    assert docs_api.exported() == list(hpsearch.__all__)
    for name in hpsearch.__all__:
        assert f'id="hpsearch.{name}"' in page, f"hpsearch.{name} has no entry in the API reference"
        summary = " ".join((getattr(hpsearch, name).__doc__ or "").strip().split("\n\n")[0].split())
        # A cross-reference [`x`][target] shows as x; code spans lose their backticks.
        words = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", summary).replace("`", "")
        # Tags around code spans leave spaces in the page's text: compare without white space.
        assert words and "".join(words.split()) in "".join(text.split()), \
            f"hpsearch.{name}'s docstring is not shown"


@pytest.mark.xdist_group("docs-build")
def test_strict_build_renders_benchmark_results_with_their_provenance(site: Path) -> None:
    for name in ("store", "load", "memory", "serve", "startup"):
        result = docs_results.load(name, REPO / "scripts" / "results")
        text = _text(site / "benchmarks" / f"{name}.html")
        assert f"Made by {result['command']} at commit {result['commit']}" in text
        first_cell = docs_results.number(result["tables"][0]["rows"][0][0])
        assert first_cell in text and result["tables"][0]["columns"][0] in text


def _docs_copy(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    return docs


@pytest.mark.xdist_group("docs-build")
def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    docs = _docs_copy(tmp_path)
    (docs / "reference" / "cli.md").write_text(
        (docs / "reference" / "cli.md").read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build_site(site_config(tmp_path, docs))
    assert done.returncode != 0
    assert re.search(r"WARNING .*no-such-page\.md", done.stderr), done.stderr[-3000:]


@pytest.mark.xdist_group("docs-build")
def test_a_missing_result_file_fails_the_strict_build_naming_it(tmp_path: Path) -> None:
    docs = _docs_copy(tmp_path)
    (docs / "benchmarks" / "index.md").write_text(
        (docs / "benchmarks" / "index.md").read_text() + "\n<!-- results: no-such-benchmark -->\n")
    done = build_site(site_config(tmp_path, docs))
    assert done.returncode != 0
    assert re.search(r"WARNING .*benchmarks/index\.md: <!-- results: no-such-benchmark -->: result file "
                     r"scripts/results/no-such-benchmark\.json does not exist", done.stderr), \
        done.stderr[-3000:]


def test_an_argument_without_help_is_caught() -> None:
    from hpsearch.cli import build_parser

    assert docs_cli.undocumented(build_parser()) == []
    parser = argparse.ArgumentParser(prog="tool")
    commands = parser.add_subparsers(dest="command")
    sub = commands.add_parser("go", help="go somewhere")
    sub.add_argument("place", help="where to")
    sub.add_argument("--speed", type=int)
    sub.add_argument("--secret", help=argparse.SUPPRESS)
    assert docs_cli.undocumented(parser) == ["tool go --speed"]
    reference = docs_cli.cli_reference(parser)
    assert "## tool go { #tool-go }" in reference and "| `place` | `place` |  | where to |" in reference
    assert "--secret" not in reference


def test_an_export_without_its_docstring_sections_is_caught(tmp_path: Path) -> None:
    assert docs_api.problems(docs_api.exported()) == []
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text('''
def documented(x: int) -> int:
    """Double it.

    Args:
        x: a number.

    Returns:
        Twice ``x``.
    """
    return 2 * x


def bare(x: int) -> int:
    """Double it."""
    return 2 * x


class Thing:
    """A thing."""

    def method(self, y: int) -> str:
        return str(y)
''')
    found = docs_api.problems(["documented", "bare", "Thing", "absent"], "fakepkg", [str(tmp_path)])
    assert found == ["fakepkg.bare takes x but its docstring has no Args: section",
                     "fakepkg.bare returns int but its docstring has no Returns: section",
                     "fakepkg.Thing.method has no docstring",
                     "fakepkg.absent is in __all__ but cannot be found"]


def test_result_tables_render_rounded_with_command_commit_date_and_machine(tmp_path: Path) -> None:
    path = write_result("demo-bench", title="Demo", summary="Batched writes cost less.",
                        tables=[table("Per trial", ["mode", "ms", "trials", "sound"],
                                      [["batched", 3.14159, 30000, True], ["per epoch", 123.456, 3, False],
                                       ["blank", None, 0, None]], notes="Median of runs.")],
                        figures=["demo-bench.png"], out_dir=tmp_path, command="python scripts/demo.py --n 3")
    result = docs_results.load("demo-bench", tmp_path)
    markdown = docs_results.render(result, lambda name: f"../assets/results/{name}")
    assert "Batched writes cost less." in markdown and "**Per trial**" in markdown
    assert "| batched | 3.14 | 30,000 | yes |" in markdown
    assert "| per epoch | 123 | 3 | no |" in markdown and "| blank |  | 0 |  |" in markdown
    assert "![Demo](../assets/results/demo-bench.png)" in markdown
    made = (f"*Made by `python scripts/demo.py --n 3` at commit `{result['commit']}` on {result['date']}, "
            f"on {docs_results.machine(result)}.*")
    assert made in markdown
    path.write_text('{"rows": [[1, 2]]}')  # the old format, before bench_results
    with pytest.raises(docs_results.ResultFileError, match="demo-bench.json has no 'tables' list"):
        docs_results.load("demo-bench", tmp_path)
    with pytest.raises(docs_results.ResultFileError, match="scripts/results/absent.json does not exist"):
        docs_results.load("absent", tmp_path)


def test_runnable_blocks_are_collected_in_order_and_a_failing_one_fails(tmp_path: Path) -> None:
    page = ("# Page\n\n<!-- runnable -->\n```bash\necho one > a.txt\n```\n\n```bash\nexit 1\n```\n\n"
            "<!-- runnable -->\n```python\nprint(open('a.txt').read().strip())\n```\n")
    blocks = runnable_blocks(page)
    assert blocks == [Block(4, "bash", "echo one > a.txt\n"),
                      Block(13, "python", "print(open('a.txt').read().strip())\n")]
    run_blocks(blocks, tmp_path, "page.md")  # the second reads what the first wrote: one folder, in order
    failing = runnable_blocks("<!-- runnable -->\n```bash\ntrue\nfalse\necho never\n```\n")
    with pytest.raises(AssertionError, match=r"page.md: the runnable bash block at line 2 exited 1"):
        run_blocks(failing, tmp_path, "page.md")
    with pytest.raises(RunnableMarkupError, match="line 1: <!-- runnable --> must be directly followed"):
        runnable_blocks("<!-- runnable -->\n\n```bash\ntrue\n```\n")
    with pytest.raises(RunnableMarkupError, match="must be bash or python, not 'yaml'"):
        runnable_blocks("<!-- runnable -->\n```yaml\na: 1\n```\n")


def _pages_with_blocks() -> list[pytest.ParameterSet]:
    pages = []
    for path in doc_pages():
        # A marker is a line of its own; a page that only mentions it (in code) has no blocks.
        if path.is_file() and any(line.strip() == MARKER for line in path.read_text().splitlines()):
            pages.append(pytest.param(path, id=str(path.relative_to(REPO))))
    return pages or [pytest.param(None, id="no-runnable-blocks",
                                  marks=pytest.mark.skip(reason="no page marks a runnable block yet"))]


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("page", _pages_with_blocks())
def test_runnable_blocks_of_the_page_run(page: Path, tmp_path: Path) -> None:
    where = str(page.relative_to(REPO))
    blocks = runnable_blocks(page.read_text(), where)
    assert blocks, f"{where} has a runnable marker but no block"
    run_blocks(blocks, tmp_path, where)


#: First-person words the docs must not use (the docs speak to and about the user, in the third person).
FIRST_PERSON = re.compile(
    r"(?<![\w'`/-])(I|I'm|I've|I'd|we|We|we're|we've|our|Our|ours|us|my|My)(?![\w'`/-])")


def test_the_docs_do_not_speak_in_the_first_person() -> None:
    found = []
    for path in doc_pages():
        if not path.is_file():
            continue
        prose = re.sub(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", "", path.read_text(), flags=re.S | re.M)
        prose = re.sub(r"`[^`\n]*`", "", prose)
        for line in prose.splitlines():
            if FIRST_PERSON.search(line):
                found.append(f"{path.relative_to(REPO)}: {line.strip()[:120]}")
    assert not found, "first person in the docs:\n" + "\n".join(found[:30])
