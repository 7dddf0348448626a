"""The example configs do what the README and their comments promise, through the real CLI."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, needs_shared_data


@pytest.fixture
def scratch_store(monkeypatch, tmp_path):
    # The examples name their store next to themselves; tests keep the repository clean.
    monkeypatch.setenv("SEGSYNC_STORE__PATH", str(tmp_path / "example.db"))


def test_init_writes_a_config_that_checks(cli, tmp_path):
    assert cli("init").code == 0
    assert (tmp_path / "segsync.toml").exists()
    result = cli("check")
    assert result.code == 0, result.stderr
    assert cli("init").code == 2  # never overwrites without --force


def test_cdnow_master_imports_every_purchase(cli, scratch_store):
    needs_shared_data("cdnow", "CDNOW_master.txt")
    config = REPO / "examples" / "cdnow.toml"
    pulled = cli("pull", "--config", config, "--json")
    assert pulled.code == 0, pulled.stderr
    status = json.loads(cli("status", "--config", config, "--json").stdout)
    cdnow = status["sources"]["cdnow"]
    assert (cdnow["customers"], cdnow["orders"], cdnow["rejected"]) == (23_570, 69_659, 0)
    assert cdnow["orders_total_amount"] == pytest.approx(2_500_315.63, abs=0.005)
    again = json.loads(cli("pull", "--config", config, "--json").stdout)["sources"][0]
    assert (again["customers"], again["orders"], again["files_skipped"]) == (0, 0, 1)


def test_model_fit_on_the_cdnow_sample_reproduces_the_published_parameters(cli, scratch_store):
    needs_shared_data("cdnow", "CDNOW_sample.txt")
    config = REPO / "examples" / "cdnow_sample.toml"
    assert cli("pull", "--config", config).code == 0
    result = cli("model", "fit", "--config", config, "--as-of", "1997-09-30", "--json")
    assert result.code == 0, result.stderr
    fit = json.loads(result.stdout)
    bg, gg = fit["bgnbd"], fit["gamma_gamma"]
    assert [float(f"{bg[k]:.3g}") for k in ("r", "alpha", "a", "b")] == [0.243, 4.41, 0.793,
                                                                        2.43]
    assert bg["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    assert [float(f"{gg[k]:.3g}") for k in ("p", "q", "gamma")] == [6.25, 3.74, 15.4]
