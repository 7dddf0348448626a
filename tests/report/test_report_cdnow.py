"""Acceptance: the report of the CDNOW example (23,570 people) builds in under 10 s and the
page stays under 3 MB. Timed, so it measures the build alone, on a store the run filled."""

from __future__ import annotations

import time

import pytest
from conftest import REPO, needs_shared_data

from segsync.core.report import write_report
from segsync.core.settings import load_settings
from segsync.core.store import open_store


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_cdnow_report_builds_in_under_10_s_and_weighs_under_3_mb(cli, tmp_path,
                                                                     monkeypatch):
    needs_shared_data("cdnow", "CDNOW_master.txt")
    config = REPO / "examples" / "cdnow.toml"
    monkeypatch.setenv("SEGSYNC_STORE__PATH", str(tmp_path / "cdnow.db"))
    run = cli("run", "--config", config)
    assert run.code == 0, run.stderr
    settings = load_settings(config)
    db = open_store(settings.store.path)
    started = time.perf_counter()
    size = write_report(db, settings, settings.as_of, tmp_path / "report.html")
    took = time.perf_counter() - started
    page = (tmp_path / "report.html").read_text()
    assert 'data-people="23570"' in page
    assert took < 10, f"{took:.1f} s"
    assert size < 3 * 1024 * 1024, f"{size:,} bytes"
