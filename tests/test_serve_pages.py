"""``hpsearch serve``'s pages in a real headless Chromium (Debian's package, driven by Playwright).

``scripts/chromium.sh`` installs chromium when it is missing, as ``scripts/postgres.sh`` does for
PostgreSQL; if it cannot, these tests fail rather than skip. Screenshots are saved in each test's
directory and copied to /tmp/serve-screenshots/.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO
from tests.serve_support import (
    FAKE_STUDIES,
    Server,
    launch_body,
    populate,
    running_server,
    save_screenshot,
    wait_json,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve-pages")]

#: Chromium flags for a sandbox-less container with no network: nothing reaches out on its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _wait(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll from Python: the pages' Content-Security-Policy (kept on in tests) forbids the eval that
    Playwright's wait_for_function would use."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = subprocess.run(["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True,
                           timeout=900)
    if found.returncode != 0:
        pytest.fail(f"chromium is needed for the dashboard tests and could not be installed: "
                    f"{found.stderr.strip()}")
    return found.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, int], Path]]:
    """One server over a store holding a study of each engine with known values, and a retrained model."""
    tmp_path = tmp_path_factory.mktemp("serve-pages")
    db_url = f"sqlite:///{tmp_path / 'hp.db'}"
    model_ids = populate(db_url, tmp_path / "models")
    with running_server(tmp_path, db_url) as server:
        yield server, model_ids, tmp_path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    # Errors the page caught and showed to its reader count too.
    shown = opened.locator(".message.error.shown").all_inner_texts()
    context.close()
    assert not errors and not shown, f"the page reported errors: {errors + shown}"


def test_studies_page_lists_every_study(site, page, tmp_path: Path) -> None:
    server, _, _ = site
    page.goto(f"{server.url}/")
    rows = page.locator("#studies tbody tr[data-study]")
    rows.first.wait_for()
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.study)")
    assert sorted(names) == sorted(FAKE_STUDIES)
    for name, (engine, _, _, values) in FAKE_STUDIES.items():
        row = page.locator(f'#studies tr[data-study="{name}"]')
        assert row.locator("td.engine").inner_text() == engine
        assert row.locator('[data-field="trials"]').inner_text() == str(len(values))
        best = max(v for v in values if v is not None)
        assert float(row.locator('[data-field="best"]').inner_text()) == pytest.approx(best, abs=1e-4)
    save_screenshot(page, tmp_path, "studies")


def test_study_page_shows_trial_count_and_best(site, page, tmp_path: Path) -> None:
    server, _, _ = site
    page.goto(f"{server.url}/studies/iris-optuna")
    expect(page.locator("#trials tbody tr[data-number]")).to_have_count(6, timeout=30_000)
    assert page.locator("#trial-count").inner_text() == "6"
    assert page.locator("#best-value").inner_text() == "0.9"
    assert page.locator("#best-trial").inner_text() == "#3"
    assert page.locator("#count-failed").inner_text() == "1"
    # Each chart drew: both histories, the top trials' curves, one plot per tuned parameter.
    for chart in ("#history-trials", "#history-seconds", "#curves", "#loss-curves"):
        assert page.locator(f"{chart} svg path").count() >= 2, chart
    assert page.locator("#param-plots [data-param]").count() == 3
    assert page.locator("#param-plots circle").count() == 3 * 5  # five valued trials per parameter
    assert page.locator("#trials tr.best").get_attribute("data-number") == "3"
    # Sorting goes through the API's sort: best value first.
    page.select_option("#sort", "value")
    page.check("#desc")
    # The re-sorted page comes from the API; on two busy cores (the other test worker trains) it can take
    # longer than expect's default 5 s.
    expect(page.locator("#trials tbody tr").first).to_have_attribute("data-number", "3", timeout=30_000)
    save_screenshot(page, tmp_path, "study")


def test_running_study_page_gains_trials_without_reload(site, page, tmp_path: Path) -> None:
    server, _, _ = site
    with server.client() as api:
        launched = api.post("/api/studies", json=launch_body("live-optuna", trials=5))
        assert launched.status_code == 202, launched.text
        wait_json(api, "/api/studies/live-optuna", lambda s: s["trials"] >= 1)
        page.goto(f"{server.url}/studies/live-optuna")
        page.locator("#status .badge.running").wait_for()
        first = int(page.locator("#trial-count").inner_text())
        # A mark on the window survives only if the page is never reloaded.
        page.evaluate("window.__not_reloaded = true")
        _wait(lambda: int(page.locator("#trial-count").inner_text()) >= first + 1, 180)
        assert page.evaluate("window.__not_reloaded") is True
        _wait(lambda: page.locator("#history-trials svg path").count() >= 2, 60)
        save_screenshot(page, tmp_path, "study-running")
        wait_json(api, "/api/studies/live-optuna", lambda s: not s["run"]["running"])
        expect(page.locator("#trial-count")).to_have_text("5", timeout=30_000)
        expect(page.locator("#stop")).to_be_hidden(timeout=30_000)


def test_compare_page_shows_two_engines(site, page, tmp_path: Path) -> None:
    server, _, _ = site
    page.goto(f"{server.url}/compare?study=iris-optuna&study=iris-sklearn")
    page.locator("#compare tbody tr").nth(1).wait_for()
    engines = page.locator("#compare td.engine").all_inner_texts()
    assert engines == ["optuna", "sklearn"]
    assert "9 × 3 folds" in page.locator('#compare tr[data-study="iris-sklearn"]').inner_text()
    # At equal budget: optuna spent 18 epochs in all (6 trials of 3); sklearn spends 9 per candidate
    # (3 folds of 3 epochs), so within 18 epochs it had fitted two candidates, best 0.8667.
    equal = page.locator("#equal")
    assert "best within 18 epochs" in equal.inner_text()
    assert equal.locator("tbody tr").nth(0).locator("td").nth(2).inner_text() == "0.9"
    assert equal.locator("tbody tr").nth(1).locator("td").nth(2).inner_text() == "0.8667"
    for chart in ("#by-epochs", "#by-seconds", "#by-trials"):
        assert page.locator(f"{chart} g[data-series] path").count() == 2, chart
    save_screenshot(page, tmp_path, "compare")


def test_model_page_shows_test_metrics_card_and_downloads(site, page, tmp_path: Path) -> None:
    server, model_ids, _ = site
    page.goto(f"{server.url}/studies/iris-optuna/models/{model_ids['iris-optuna']}")
    page.locator("#test-metrics tbody tr").first.wait_for()
    assert "accuracy" in page.locator("#test-metrics").inner_text()
    assert "0.9333" in page.locator("#test-metrics").inner_text()
    assert '"trial": 3' in page.locator("#card").inner_text()
    with page.expect_download() as download:
        page.click("#download-model")
    saved = tmp_path / "downloaded.keras"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith(b"PK")
    save_screenshot(page, tmp_path, "model")
