"""``segments explain`` answers in words and ``segments why`` checks one person, on the demo."""

from __future__ import annotations

import json


def test_explain_says_what_the_segment_means_with_thresholds_and_dates(demo, cli):
    result = cli("segments", "explain", "fading_regulars")
    assert result.code == 0, result.stderr
    text = " ".join(result.stdout.split())
    # the [scoring] thresholds and today's boundary date (as_of 2026-11-01 minus 60 days)
    assert "at least 3 orders, the latest 60+ days ago (on or before 2026-09-02)" in text
    assert "more than 2 times their median gap" in text
    assert "SELECT" not in result.stdout
    lapsed = " ".join(cli("segments", "explain", "lapsed").stdout.split())
    assert "is before 2026-03-01 (8 months before 2026-11-01)" in lapsed


def test_explain_follows_the_config_thresholds(demo, cli):
    config = demo / "segsync.toml"
    config.write_text(config.read_text().replace("fading_min_days = 60", "fading_min_days = 90"))
    text = " ".join(cli("segments", "explain", "fading_regulars").stdout.split())
    assert "the latest 90+ days ago (on or before 2026-08-03)" in text


def test_the_sql_is_behind_a_flag(demo, cli):
    result = cli("segments", "explain", "lapsed", "--sql")
    assert result.code == 0
    assert "WHERE pf.last_order_date < :p1" in result.stdout
    assert ":p1 = '2026-03-01'" in result.stdout


def test_why_shows_each_condition_with_the_persons_value(demo, cli):
    assert cli("run").code == 0
    result = cli("segments", "why", "over_40_top_spenders", "BEA.DUNMORE@example.com", "--json")
    assert result.code == 0, result.stderr
    (person,) = json.loads(result.stdout)["people"]
    assert person["member"] is False
    age, spend = [c for c in person["conditions"] if "condition" in c]
    assert (age["condition"], age["value"], age["held"]) == ("age > 40", 39, False)
    assert spend["condition"] == "spend_percentile >= 90" and spend["held"] is False
    human = cli("segments", "why", "over_40_top_spenders", "bea.dunmore@example.com").stdout
    assert "is NOT in over_40_top_spenders" in human
    assert "[no]  age > 40 (theirs: 39)" in human


def test_why_says_whether_the_consent_gate_holds_a_member_out_of_each_sync(demo, cli):
    assert cli("run").code == 0
    held = json.loads(cli("segments", "why", "fading_regulars", "uma.iwasaki@example.net",
                          "--json").stdout)["people"][0]
    assert held["member"] is True
    assert held["conditions"][0]["held"] is True and held["conditions"][0]["value"] is True
    assert held["syncs"] == {"fading_sms": {
        "sent": False, "consent": "not_opted_in",
        "reason": "consent NOT_SUBSCRIBED not allowed by policy subscribed"}}
    human = cli("segments", "why", "fading_regulars", "uma.iwasaki@example.net").stdout
    assert ("sync fading_sms: not sent: not opted in (consent NOT_SUBSCRIBED not allowed by "
            "policy subscribed)") in human
    # found by phone too, in another segment whose sync sends them
    sent = cli("segments", "why", "mystery_readers", "+1 503 555 0162")
    assert sent.code == 0
    assert "IS in mystery_readers" in sent.stdout
    assert "sync mystery_newsletter: sent" in sent.stdout


def test_why_refuses_an_unknown_person_or_segment(demo, cli):
    assert cli("pull").code == 0
    unknown = cli("segments", "why", "lapsed", "nobody@example.com")
    assert unknown.code == 2
    assert "nobody in the store has the email or phone nobody@example.com" in unknown.stderr
    assert cli("segments", "why", "nosuch", "bea.dunmore@example.com").code == 2
