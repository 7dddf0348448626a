"""Each section's numbers, against the CLI's --json output and the store's own tables."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers_report import build_demo_store, cli_json

from segsync.core.report import build_report, report_data
from segsync.core.settings import load_settings
from segsync.core.store import open_store

DAY = dt.date(2026, 11, 8)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    return build_demo_store(tmp_path_factory)


@pytest.fixture
def store(demo_store, monkeypatch):
    monkeypatch.chdir(demo_store)
    settings = load_settings(demo_store / "segsync.toml")
    return open_store(settings.store.path), settings


@pytest.fixture
def data(store):
    return report_data(*store, DAY)


def test_segment_sizes_are_those_of_segments_list_with_each_runs_history(data, cli, store):
    listed = cli_json(cli, "segments", "list")
    runs = [r for r in cli_json(cli, "status")["runs"] if r["command"] == "run"][::-1]
    assert [{k: s[k] for k in listed[0]} for s in data["segments"]] == listed
    for seg in data["segments"]:
        assert seg["history"] == [r["summary"]["segments"][seg["name"]] for r in runs]
        assert seg["change"] == seg["history"][-1] - seg["history"][-2]
    assert any(s["change"] for s in data["segments"])  # the week moved something


def test_a_plan_or_preview_adds_no_size_history(demo_store, cli, store, monkeypatch):
    monkeypatch.chdir(demo_store)
    db, _ = store
    before = db.execute("SELECT count(*) FROM segment_sizes").fetchone()[0]
    assert cli("plan", "--as-of", "2026-11-15").code in (0, 4)
    assert cli("segments", "preview", "churn_risk", "--as-of", "2026-11-15").code == 0
    assert db.execute("SELECT count(*) FROM segment_sizes").fetchone()[0] == before


def test_rfm_grid_counts_every_scored_buyer_once(data, store):
    db, _ = store
    cells = {(c["r"], c["f"]): c for c in data["rfm"]["cells"]}
    for (r, f), cell in cells.items():
        people, spend = db.execute(
            "SELECT count(*), avg(amount_spent) FROM person_features "
            "WHERE recency_score = ? AND frequency_score = ?", [r, f]).fetchone()
        assert (cell["people"], cell["avg_spend"]) == (people, round(spend, 2))
    buyers = db.execute("SELECT count(*) FROM person_features "
                        "WHERE number_of_orders > 0").fetchone()[0]
    assert sum(c["people"] for c in cells.values()) == buyers
    assert sum(data["rfm"]["groups"].values()) == buyers


def test_lifecycle_funnel_is_in_stage_order_with_shares_of_buyers(data, store):
    db, _ = store
    stages = data["lifecycle"]["stages"]
    assert [s["stage"] for s in stages] == ["NEW", "ACTIVE", "REACTIVATED", "AT_RISK",
                                             "LAPSED", "LOST"]
    counts = dict(db.execute("SELECT lifecycle_stage, count(*) FROM person_features "
                             "GROUP BY 1").fetchall())
    assert {s["stage"]: s["people"] for s in stages if s["people"]} == {
        k: v for k, v in counts.items() if k != "PROSPECT"}
    assert data["lifecycle"]["prospects"] == counts["PROSPECT"]
    assert sum(s["share"] for s in stages) == pytest.approx(1, abs=1e-3)


def test_predictions_show_the_fit_of_model_fit_and_everyone_predicted(data, cli):
    fit = cli_json(cli, "model", "fit", "--as-of", DAY.isoformat())
    p = data["predictions"]
    assert (p["bgnbd"], p["gamma_gamma"]) == (fit["bgnbd"], fit["gamma_gamma"])
    assert p["with_predictions"] == fit["coverage"]["with_purchase_predictions"]
    assert len(p["p_alive"]) == p["with_predictions"]
    assert all(0 <= v <= 1 for v in p["p_alive"])
    assert p["gaps"] == ["5 have none: no valid order up to 2026-11-08"]


def test_run_report_says_why_a_fit_was_unusable_as_the_run_does(tmp_path, cli):
    """On the demo's first weeks the purchase model cannot be fitted: the page (written by
    ``run --report``) says why, as the run's warning does, and draws empty distributions
    instead of failing."""
    import shutil

    from conftest import REPO
    shutil.copytree(REPO / "examples" / "exports", tmp_path / "examples" / "exports")
    shutil.copy(REPO / "config.example.toml", tmp_path / "segsync.toml")
    run = cli("run", "--as-of", "2026-01-20", "--report", "out/report.html")
    assert "too little history" in (tmp_path / "out" / "report.html").read_text()
    settings = load_settings(tmp_path / "segsync.toml")
    db = open_store(settings.store.path)
    p = report_data(db, settings, dt.date(2026, 1, 20))["predictions"]
    assert p["bgnbd"] is None and p["with_predictions"] == 0
    for gap in p["gaps"]:  # the run's coverage lines; the model's own gap is also its warning
        assert gap in run.stdout
    [unusable] = [g for g in p["gaps"] if "too little history" in g]
    assert f"warning: predictions: {unusable}" in run.stderr
    page = build_report(db, settings, dt.date(2026, 1, 20))
    assert "too little history" in page and "not fitted" in page


def test_sync_health_is_each_runs_summary_and_the_latest_plans_holds(data, cli):
    runs = [r for r in cli_json(cli, "status")["runs"] if r["command"] == "run"][::-1]
    last = {s["sync"]: s for s in runs[-1]["summary"]["syncs"]}
    assert set(data["syncs"]) == set(last)
    for name, health in data["syncs"].items():
        assert [r["run_id"] for r in health["runs"]] == [r["id"] for r in runs]
        first = {s["sync"]: s for s in runs[0]["summary"]["syncs"]}[name]
        assert (health["runs"][0]["added"], health["runs"][0]["removed"]) == (
            first["added"], first["removed"])
        assert health["gate"] == last[name]["invalid_reasons"]
        assert health["held"] == last[name]["held"]
        # In the words run and plan print, every member in one category.
        assert list(health["consent"]) == ["eligible", "not opted in",
                                           "unsubscribed/suppressed", "no valid email/phone",
                                           "duplicate address"]
        assert sorted(health["consent"].values()) == sorted(last[name]["consent"].values())
        assert health["consent"]["eligible"] == last[name]["consent"]["eligible"]
    assert any(h["gate"] for h in data["syncs"].values())
    assert any(h["consent"]["not opted in"] for h in data["syncs"].values())


def test_data_quality_is_status_per_source_with_reasons_and_merges(data, cli, store):
    db, _ = store
    status = cli_json(cli, "status")
    assert data["status"]["sources"] == status["sources"]
    assert data["status"]["people"] == status["people"]
    for name, s in data["quality"]["sources"].items():
        src = status["sources"][name]
        assert s == {"imported": src["customers"] + src["orders"], "rejected": src["rejected"],
                     "erased_dropped": 0}
    top = data["quality"]["top_reasons"][0]
    assert top["rows"] == sum(s["rejected"] for s in status["sources"].values())
    assert top["reason"].startswith("no customer: column 'Customer ID' blank")
    assert data["quality"]["merged"] == db.execute(
        "SELECT count(*) FROM person_merges").fetchone()[0]


@pytest.mark.parametrize("browser", [True, False])
def test_open_hands_the_written_page_to_the_browser_or_says_there_is_none(
        demo_store, cli, monkeypatch, tmp_path, browser):
    monkeypatch.chdir(demo_store)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or browser)
    page = tmp_path / "page.html"
    result = cli("report", "--out", page, "--as-of", "2026-11-08", "--open")
    assert result.code == 0, result.stderr
    assert opened == [page.resolve().as_uri()] and page.stat().st_size > 0
    assert ("no browser found" in result.stderr) is not browser
