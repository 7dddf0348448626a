"""The report in a real browser: headless Chromium (Debian's, driven by playwright) draws every
section and chart, logs no error, asks the network for nothing, and shows the CLI's numbers."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers_report import build_demo_store, cli_json

SECTIONS = ["segments", "rfm", "lifecycle", "predictions", "syncs", "quality"]


def chromium_path() -> str:
    pytest.importorskip("playwright.sync_api",
                        reason="playwright is not installed (pip install -e '.[test]')")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's 'chromium' package; "
                    "apt-get install -y chromium)")
    return path


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    return build_demo_store(tmp_path_factory)


@pytest.fixture
def page_of(demo_store, monkeypatch, cli):
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    monkeypatch.chdir(demo_store)
    result = cli("report", "--out", demo_store / "out" / "report.html")
    assert result.code == 0, result.stderr
    url = (demo_store / "out" / "report.html").as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        requests, problems = [], []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))

        def only_the_file(route):
            requests.append(route.request.url)
            if route.request.url == url:
                route.continue_()
            else:
                route.abort()

        page.route("**/*", only_the_file)
        page.goto(url)
        yield page, requests, problems
        browser.close()


def test_every_section_and_chart_is_drawn_offline_without_errors(page_of):
    page, requests, problems = page_of
    for section in SECTIONS:
        box = page.locator(f"section#{section}").bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, section
        assert page.locator(f"section#{section} p.caption").inner_text().strip(), section
    charts = page.locator("svg.chart")
    assert charts.count() >= 5 + len(SECTIONS)
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, i
        assert chart.locator("title").text_content().strip()
        assert chart.locator("desc").text_content() is not None
    # The page fits a phone: nothing wider than the screen but the scrollable tables.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems == []
    assert requests == [page.url]


def test_the_page_shows_the_numbers_of_the_clis_json(page_of, cli):
    page, _, _ = page_of
    listed = cli_json(cli, "segments", "list")
    status = cli_json(cli, "status")
    shown = page.eval_on_selector_all(
        "tr[data-segment]", "rows => rows.map(r => [r.dataset.segment, r.dataset.size])")
    assert shown == [[s["name"], str(s["size"])] for s in listed]
    assert page.locator("[data-people]").first.get_attribute("data-people") == str(
        status["people"])
    sources = page.eval_on_selector_all(
        "tr[data-source]", "rows => rows.map(r => [r.dataset.source, r.dataset.customers, "
                           "r.dataset.orders, r.dataset.rejected])")
    assert sources == [[name, str(s["customers"]), str(s["orders"]), str(s["rejected"])]
                       for name, s in status["sources"].items()]
    last = next(r for r in status["runs"] if r["command"] == "run")
    for s in last["summary"]["syncs"]:
        row = page.locator(f"[data-sync='{s['sync']}'] tr[data-run='{last['id']}']")
        assert json.loads(row.get_attribute("data-added")) == s["added"]
        assert json.loads(row.get_attribute("data-removed")) == s["removed"]
