"""Alerts: what they say, that they never carry a secret, and that delivery is bounded and
never raises, against a strict local fake of a Slack incoming webhook."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fakes.webhook import PATH, WebhookFake, refused_url
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from segsync.core.alerts import (
    Alert,
    build_alert,
    deliver,
    json_payload,
    redact,
    render,
    secret_values,
    slack_payload,
)
from segsync.core.connector import ConnectorConfig
from segsync.core.errors import ConfigError
from segsync.core.runs import recorded
from segsync.core.settings import AlertSettings, Settings, load_settings
from segsync.core.store import open_store


def settings_for(url: str | None, **alerts: Any) -> Settings:
    return Settings(alerts=AlertSettings(webhook_url=url, **alerts))


def held_alert(**changes: Any) -> Alert:
    alert = Alert(
        "held", 4, "segsync run 7 held removals (exit 4)", "5 syncs: +1 ~0 -0, 0 failed, 9 held",
        ["sync vip: 9 removals held (9 removals exceed 20 % of the 10 acknowledged members)"],
        {"id": 7, "started_at": "2026-11-01T03:00:00Z", "finished_at": "2026-11-01T03:00:09Z",
         "status": "held", "exit_code": 4, "as_of": "2026-11-01"},
    )
    for key, value in changes.items():
        setattr(alert, key, value)
    return alert


def test_the_slack_payload_is_complete_text_plus_blocks_slack_accepts():
    payload = slack_payload(held_alert(), "Marginalia")
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith(":warning: *Marginalia*: segsync run 7 held removals")
    assert "9 removals held" in payload["text"]  # the text alone tells the whole story
    assert [b["type"] for b in payload["blocks"]] == ["section", "section", "context"]
    with WebhookFake() as hook:
        assert deliver(AlertSettings(webhook_url=hook.url), payload)
    assert hook.accepted == [payload]


def test_slack_markup_in_names_is_escaped_so_nobody_gets_pinged():
    alert = held_alert(problems=["sync <!channel>: 1 failed & 0 rejected"])
    payload = slack_payload(alert, "<@U123> shop")
    assert "<!channel>" not in payload["text"] and "<@U123>" not in payload["text"]
    assert "&lt;!channel&gt;: 1 failed &amp; 0 rejected" in payload["text"]
    assert "&lt;@U123&gt; shop" in payload["blocks"][0]["text"]["text"]


def test_long_problem_lists_stay_within_slack_limits():
    alert = held_alert(problems=[f"sync s{i}: " + "x" * 290 for i in range(40)])
    payload = slack_payload(alert, "shop")
    listed = payload["blocks"][1]["text"]["text"]
    assert len(listed) <= 3000 and "… and 30 more (segsync status)" in payload["text"]
    with WebhookFake() as hook:
        assert deliver(AlertSettings(webhook_url=hook.url), payload)


def test_the_generic_payload_has_exactly_the_documented_keys():
    settings = settings_for("https://example.invalid/hook", format="json", label="Marginalia")
    payload = render(held_alert(), settings)
    assert set(payload) == {"event", "exit_code", "store", "text", "headline", "summary",
                            "problems", "run", "previous_run", "host", "config",
                            "segsync_version", "sent_at"}
    assert (payload["event"], payload["exit_code"], payload["store"]) == ("held", 4,
                                                                         "Marginalia")
    assert payload["run"]["id"] == 7 and payload["previous_run"] is None
    assert payload["text"] == ("Marginalia: segsync run 7 held removals (exit 4): "
                               "5 syncs: +1 ~0 -0, 0 failed, 9 held")
    with WebhookFake(mode="json") as hook:
        assert deliver(AlertSettings(webhook_url=hook.url), payload)
    assert hook.accepted == [payload]
    assert json_payload(held_alert(), Settings(), "x")["config"] is None


def test_which_run_endings_are_alerted(tmp_path):
    db = open_store(tmp_path / "s.db")

    def finish(code: int, summary: dict | None = None):
        with recorded(db, "run") as run:
            run.exit_code, run.summary = code, summary or {}
        return run

    first = finish(0)
    assert build_alert(db, first, 0) is None  # a success after nothing is news to nobody
    failed = finish(1, {"syncs": [{"sync": "vip", "failed": 2, "rejected": 1}]})
    alert = build_alert(db, failed, 1)
    assert (alert.event, alert.headline) == ("failed", f"segsync run {failed.id} failed (exit 1)")
    assert alert.problems == [f"sync vip: 2 failed, 1 rejected (segsync log --run {failed.id} "
                              "--sync vip)"]
    recovered = finish(0)
    alert = build_alert(db, recovered, 0)
    assert alert.event == "recovered" and alert.previous["id"] == failed.id
    assert build_alert(db, recovered, 0, on_recovery=False) is None
    assert build_alert(db, finish(0), 0) is None  # only the first success after a failure
    assert build_alert(db, finish(2), 2) is None  # bad config: a person at a terminal sees it
    locked = build_alert(db, None, 3, error="another segsync run holds the lock on s.db")
    assert (locked.event, locked.run, locked.summary) == (
        "locked", None, "another segsync run holds the lock on s.db")
    # A run killed mid-way never closes its row; the next success says so.
    killed = db.execute("INSERT INTO runs(command, started_at, status) "
                        "VALUES ('run', '2026-11-01T03:00:00Z', 'running')").lastrowid
    alert = build_alert(db, finish(0), 0)
    assert alert.previous["id"] == killed and "did not finish" in alert.headline


# -- delivery ----------------------------------------------------------------------------------

def test_5xx_answers_are_retried_until_the_webhook_takes_the_alert():
    waits: list[float] = []
    with WebhookFake(script=[(500, "rollup_error", {}), (503, "", {})]) as hook:
        assert deliver(AlertSettings(webhook_url=hook.url), {"text": "hi"}, sleep=waits.append)
    assert [r.status for r in hook.requests] == [500, 503, 200]
    assert len(waits) == 2


def test_429_waits_what_the_webhook_asks():
    waits: list[float] = []
    with WebhookFake(script=[(429, "rate_limited", {"Retry-After": "2"})]) as hook:
        assert deliver(AlertSettings(webhook_url=hook.url), {"text": "hi"}, sleep=waits.append)
    assert waits == [2.0] and len(hook.requests) == 2


def test_a_refusal_is_final_and_the_warning_never_shows_the_webhook_token(caplog):
    caplog.set_level(logging.INFO, logger="segsync")
    with WebhookFake() as hook:
        wrong = hook.url.replace("B0ALERTS", "B0REVOKED")
        assert not deliver(AlertSettings(webhook_url=wrong), {"text": "hi"},
                           sleep=lambda _s: None)
    assert len(hook.requests) == 1  # 404 no_service: sending it again cannot help
    assert "alert not delivered to 127.0.0.1: POST ***: HTTP 404: no_service" in caplog.text
    assert "s3cr3tW3bh00kT0k3n" not in caplog.text


def test_a_webhook_that_is_down_costs_bounded_attempts_and_raises_nothing(caplog):
    waits: list[float] = []
    assert not deliver(AlertSettings(webhook_url=refused_url(), attempts=3), {"text": "hi"},
                       sleep=waits.append)
    assert len(waits) == 2  # three tries, then the run goes on
    assert "alert not delivered to 127.0.0.1" in caplog.text
    assert PATH not in caplog.text


def test_a_slow_webhook_is_given_up_per_attempt(caplog):
    with WebhookFake(delay=1.0) as hook:
        assert not deliver(AlertSettings(webhook_url=hook.url, timeout=0.2, attempts=2),
                           {"text": "hi"}, sleep=lambda _s: None)
    assert len(hook.requests) == 2 and "timed out" in caplog.text


def test_a_webhook_url_that_is_not_http_is_refused_without_echoing_it(tmp_path, monkeypatch):
    config = tmp_path / "segsync.toml"
    config.write_text('[alerts]\nwebhook_url = "hooks.slack.com/services/T1/B1/tok3nvalue"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [f"{config}: alerts.webhook_url: expected an http:// or "
                                   "https:// URL"]
    config.write_text("")
    monkeypatch.setenv("SEGSYNC_ALERTS__WEBHOOK_URL", "https://h.example/services/tok3nvalue")
    settings = load_settings(config)
    assert settings.alerts.webhook_url.get_secret_value().endswith("/tok3nvalue")
    assert "tok3nvalue" not in repr(settings) + str(settings.model_dump())


# -- secrets -----------------------------------------------------------------------------------

class VendorConfig(ConnectorConfig):
    api_key: SecretStr
    token: str = ""          # a plugin that forgot SecretStr
    customer_key: str = ""   # a column name, not a credential
    nested: dict[str, Any] = {}


class Built:
    def __init__(self, config: ConnectorConfig):
        self.config = config


def test_secret_values_finds_every_credential_and_nothing_else():
    settings = Settings(
        destinations={"v": {"type": "vendor", "api_key": "raw-file-key-1", "token": "tok-22"}},
        alerts=AlertSettings(webhook_url="https://hooks.example.com/services/T9/B9/zzzz?sig=abcd"),
    )
    built = {"v": Built(VendorConfig(api_key="validated-key-333", token="tok-22",
                                     customer_key="Customer ID",
                                     nested={"password": "nested-pw-4444"}))}
    found = secret_values(settings, built)
    assert {"raw-file-key-1", "tok-22", "validated-key-333", "nested-pw-4444",
            "/services/T9/B9/zzzz", "sig=abcd",
            "https://hooks.example.com/services/T9/B9/zzzz?sig=abcd"} <= found
    assert "Customer ID" not in found and "vendor" not in found


@given(
    secrets=st.lists(st.text(min_size=4, max_size=12), min_size=1, max_size=4),
    pieces=st.lists(st.text(max_size=8), min_size=1, max_size=6),
)
@example(secrets=["**x*"], pieces=["", "x*"])  # "***" and its neighbours form "**x*" again
@example(secrets=["abcd", "c***"], pieces=["ab", "d"])  # one secret's stars make another
def test_no_secret_survives_redaction(secrets, pieces):
    # Secrets are woven into the text and into keys, next to each other and to "*".
    text = "".join(p + secrets[i % len(secrets)] for i, p in enumerate(pieces))
    payload = {"text": text, text: [text, {"n": 1, "s": "*" + text + "*"}]}
    left = [(secret, s) for s in strings(redact(payload, secrets)) for secret in secrets
            if secret in s]
    assert left == []


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []
