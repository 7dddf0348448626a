"""``segsync run`` end to end into Klaviyo and SimpleTexting, against their fakes over HTTP.

One config pulls a small customers CSV (emails, phones, email and SMS consent), computes one
segment and pushes it to a Klaviyo list and to a SimpleTexting list. The tests check what
reaches each service, that a quiet rerun makes no write call, and that a run killed after any
HTTP call, or hit by 429s and 5xx, converges on the next run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.klaviyo import API_KEY, KlaviyoFake
from fakes.simpletexting import TOKEN, SimpleTextingFake
from helpers_killed import Killed, killed_after

import segsync.connectors.klaviyo as klaviyo_plugin
import segsync.connectors.simpletexting as simpletexting_plugin
from segsync.plugins import extra_plugins, load_plugins

CUSTOMERS = """\
id,email,phone,first_name,city,email_ok,sms_ok
1,ada@inbox-mail.com,+1 202-555-0101,Ada,Portland,yes,yes
2,bob@inbox-mail.com,(202) 555-0102,Bob,Portland,no,yes
3,cy@inbox-mail.com,+44 20 7123 4567,Cy,Portland,yes,yes
4,dee@inbox-mail.com,+1 202-555-0104,Dee,Portland,unsubscribed,unsubscribed
5,eve@inbox-mail.com,+1 202-555-0105,Eve,Salem,yes,yes
6,fay@inbox-mail.com,+1 800-555-0100,Fay,Portland,yes,yes
7,gus@inbox-mail.com,+1 202-555-0107,Gus,Portland,yes,no
8,hal@inbox-mail.com,+1 202-555-0108,Hal,Portland,yes,yes
9,ivy@inbox-mail.com,+1 202-555-0109,Ivy,Portland,yes,yes
10,jon@inbox-mail.com,,Jon,Portland,yes,
"""
EMAIL_LIST = "Portland newsletter"
SMS_LIST = "Portland texts"
#: Portland people with email consent (bob has none, dee opted out).
KLAVIYO_MEMBERS = {f"{n}@inbox-mail.com" for n in ("ada", "cy", "fay", "gus", "hal", "ivy", "jon")}
#: Of those, hal unsubscribed at Klaviyo itself: he must not be subscribed again.
EMAIL_SUBSCRIBED = KLAVIYO_MEMBERS - {"hal@inbox-mail.com"}
#: Portland people with SMS consent and a US mobile number (cy's is a London landline,
#: fay's toll-free; gus has no SMS consent, dee opted out, jon has no phone).
SMS_MEMBERS = {"+12025550101", "+12025550102", "+12025550108", "+12025550109"}


@pytest.fixture(autouse=True)
def plugins() -> Iterator[None]:
    """Register both connectors unless they are built-ins already (registering twice fails)."""
    missing = [p for p, name in ((klaviyo_plugin, "klaviyo"),
                                 (simpletexting_plugin, "simpletexting"))
               if name not in load_plugins().destinations]
    with extra_plugins(*missing):
        yield


@contextlib.contextmanager
def services() -> Iterator[tuple[KlaviyoFake, SimpleTextingFake]]:
    """Both fakes, seeded with what a real account already holds."""
    with KlaviyoFake() as kl, SimpleTextingFake() as st:
        # hal unsubscribed through a Klaviyo email; his local consent has not caught up.
        kl.add_profile("hal@inbox-mail.com", "+12025550108", email_consent="UNSUBSCRIBED",
                       suppression=["UNSUBSCRIBE"], sms_consent="UNSUBSCRIBED")
        # ivy is on the shop's staff list, which segsync does not manage.
        st.add_list("Staff")
        st.add_contact("2025550109", lists=("Staff",), firstName="Ivy")
        # hal texted STOP.
        st.add_contact("2025550108", status="OPT_OUT")
        yield kl, st


def write_config(folder: Path, kl: KlaviyoFake, st: SimpleTextingFake) -> Path:
    (folder / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    config = folder / "segsync.toml"
    config.write_text(f"""\
[store]
path = "segsync.db"

[guardrails]
max_removal_share = 0.5

[sources.crm]
type = "pos_csv"
path = "customers.csv"
stream = "customers"
mapping = {{ customer_key = "id", email = "email", phone = "phone", first_name = "first_name", \
city = "city", email_consent = "email_ok", sms_consent = "sms_ok" }}
consent_values = {{ yes = "subscribed", no = "not_subscribed", unsubscribed = "unsubscribed" }}

[destinations.klaviyo]
api_key = "{API_KEY}"
base_url = "{kl.url}"
poll_interval = 0.01

[destinations.texts]
type = "simpletexting"
api_token = "{TOKEN}"
base_url = "{st.url}"
poll_interval = 0.01

[segments.portland]
query = "city = 'Portland'"

[syncs.newsletter]
segment = "portland"
destination = "klaviyo"
target = "{EMAIL_LIST}"
fields = {{ first_name = "first_name", phone_number = "phone", \
sms_consent = "sms_subscription_status" }}

[syncs.sms]
segment = "portland"
destination = "texts"
target = "{SMS_LIST}"
fields = {{ first_name = "first_name" }}
""", encoding="utf-8")
    return config


def run(cli, config: Path) -> tuple[int, dict[str, Any]]:
    result = cli("--config", config, "run", "--json")
    assert result.stdout.strip(), result.stderr
    summary = json.loads(result.stdout)
    return result.code, {s["sync"]: s for s in summary["syncs"]}


def assert_converged(kl: KlaviyoFake, st: SimpleTextingFake) -> None:
    """The services hold what the segment and consent call for, and nothing else."""
    assert kl.members_of(EMAIL_LIST) == KLAVIYO_MEMBERS
    assert len(kl.lists_named(EMAIL_LIST)) == 1
    emails = [p.email for p in kl.profiles.values()]
    assert len(emails) == len(set(emails)), "a profile was duplicated"
    assert kl.subscribed_emails() == EMAIL_SUBSCRIBED
    hal = kl.find_profile("hal@inbox-mail.com")
    assert hal is not None and (hal.email_consent, hal.suppression) == (
        "UNSUBSCRIBED", ["UNSUBSCRIBE"])
    assert kl.find_profile("ada@inbox-mail.com").attributes["first_name"] == "Ada"
    assert kl.unsubscribe_jobs == []
    assert st.members_of(SMS_LIST) == SMS_MEMBERS
    assert len(st.lists_named(SMS_LIST)) == 1
    assert st.members_of("Staff") == {"+12025550109"}
    assert st.contact("2025550108").subscription_status == "OPT_OUT"
    assert st.contact("2025550101").fields["firstName"] == "Ada"


def test_segments_reach_both_lists_and_a_second_run_writes_nothing(cli, tmp_path):
    with services() as (kl, st):
        config = write_config(tmp_path, kl, st)
        code, syncs = run(cli, config)
        # Two SMS people are refused for their numbers, so the first run is partial.
        assert code == 1
        assert (syncs["newsletter"]["added"], syncs["newsletter"]["rejected"]) == (7, 0)
        assert (syncs["sms"]["added"], syncs["sms"]["rejected"]) == (4, 2)
        assert_converged(kl, st)
        # Nobody without consent, opted out, or without a textable number reached either.
        subscribed = {p["email"]: p["channels"] for job in kl.subscribe_jobs
                      for p in job["profiles"]}
        assert subscribed["gus@inbox-mail.com"] == ["email"]
        assert subscribed["ada@inbox-mail.com"] == ["email", "sms"]
        assert not {"dee@inbox-mail.com", "bob@inbox-mail.com"} & set(subscribed)
        sent = {u["contactPhone"] for r in st.requests("POST", "batch-update")
                for u in r.body["updates"]}
        assert sent == {p.removeprefix("+1") for p in SMS_MEMBERS}
        assert all(r.body["listsReplacement"] is False for r in st.requests("POST", "batch"))
        log = json.loads(cli("--config", config, "log", "--sync", "sms", "--outcome",
                             "rejected", "--json").stdout)
        assert {(row["key"], row["reason"]) for row in log} == {
            ("+442071234567", "not a mobile number"), ("+18005550100", "not a mobile number")}

        writes = (kl.write_calls, st.write_calls)
        code, syncs = run(cli, config)
        assert code == 0
        assert [syncs[s]["write_calls"] for s in ("newsletter", "sms")] == [0, 0]
        assert (kl.write_calls, st.write_calls) == writes
        assert_converged(kl, st)


def test_leaving_the_segment_leaves_the_lists_but_keeps_consent(cli, tmp_path):
    with services() as (kl, st):
        config = write_config(tmp_path, kl, st)
        run(cli, config)
        csv = tmp_path / "customers.csv"
        csv.write_text(csv.read_text().replace("Ada,Portland", "Ada,Salem"))
        code, syncs = run(cli, config)
        assert code == 0
        assert (syncs["newsletter"]["removed"], syncs["sms"]["removed"]) == (1, 1)
        assert kl.members_of(EMAIL_LIST) == KLAVIYO_MEMBERS - {"ada@inbox-mail.com"}
        assert kl.find_profile("ada@inbox-mail.com").email_consent == "SUBSCRIBED"
        assert kl.unsubscribe_jobs == []
        assert st.members_of(SMS_LIST) == SMS_MEMBERS - {"+12025550101"}
        assert st.contact("2025550101") is not None
        assert st.members_of("Staff") == {"+12025550109"}


# -- lists that exist already, writes that landed unanswered -----------------------------------


def test_lists_made_by_hand_before_the_first_run_are_filled_not_duplicated(cli, tmp_path):
    with services() as (kl, st):
        kl.add_list(EMAIL_LIST)
        # Made in SimpleTexting, with Ada already added by hand.
        st.add_contact("2025550101", lists=(st.add_list(SMS_LIST),), firstName="Ada")
        config = write_config(tmp_path, kl, st)
        code, syncs = run(cli, config)
        assert code == 1  # the two numbers SimpleTexting cannot text, as on any first run
        assert (syncs["newsletter"]["error"], syncs["sms"]["error"]) == (None, None)
        assert (syncs["newsletter"]["added"], syncs["sms"]["added"]) == (7, 4)
        assert_converged(kl, st)
        assert not kl.requests("POST", "/api/lists$") and not st.requests("POST", "contact-lists$")
        writes = (kl.write_calls, st.write_calls)
        assert run(cli, config)[0] == 0
        assert (kl.write_calls, st.write_calls) == writes


def test_a_first_run_failed_after_simpletexting_applied_it_converges_on_the_next(cli,
                                                                                tmp_path):
    with services() as (kl, st):
        # The list is created and the batch update lands, but every answer to it is lost.
        st.fault(method="POST", path="batch-update$", status=503, after=True, times=50,
                 retry_after=0)
        config = write_config(tmp_path, kl, st)
        code, syncs = run(cli, config)
        assert (code, syncs["sms"]["status"], syncs["sms"]["added"]) == (1, "failed", 0)
        assert st.members_of(SMS_LIST) == SMS_MEMBERS  # it landed all the same
        st.faults.clear()
        code, syncs = run(cli, config)
        assert (syncs["sms"]["error"], syncs["sms"]["added"]) == (None, 4)
        assert_converged(kl, st)
        assert len(st.requests("POST", "contact-lists$")) == 1
        writes = (kl.write_calls, st.write_calls)
        assert run(cli, config)[0] == 0
        assert (kl.write_calls, st.write_calls) == writes


# -- killed runs ----------------------------------------------------------------------------


def test_a_run_killed_after_any_http_call_converges_on_the_next(cli, tmp_path):
    with services() as (kl, st):
        (tmp_path / "clean").mkdir()
        run(cli, write_config(tmp_path / "clean", kl, st))
        calls = len(kl.log) + len(st.log)
    assert calls > 8
    for n in range(1, calls + 1):
        folder = tmp_path / f"kill-{n}"
        folder.mkdir()
        with services() as (kl, st):
            config = write_config(folder, kl, st)
            with killed_after(n), pytest.raises(Killed):
                cli("--config", config, "run", "--json")
            code, _ = run(cli, config)
            assert code == 1, f"killed after call {n}"
            assert_converged(kl, st)
            writes = (kl.write_calls, st.write_calls)
            code, _ = run(cli, config)
            assert (code, kl.write_calls, st.write_calls) == (0, *writes), n
        # A job or task id persisted before polling is always forgotten once confirmed.
        for ledger in folder.glob("*.json"):
            data = json.loads(ledger.read_text())
            assert not data.get("jobs"), (n, ledger.name)


def test_429s_and_5xx_on_every_write_converge(cli, tmp_path):
    with services() as (kl, st):
        # Before and after the write took effect; Retry-After 0 keeps the test quick.
        for path in ("/api/lists$", "profile-bulk-import-jobs$", "subscription-bulk-create",
                     "relationships/profiles"):
            kl.fault(method="POST", path=path, status=429, retry_after=0)
            kl.fault(method="POST", path=path, status=503, after=True, retry_after=0)
        kl.fault(method="GET", path="profile-bulk-import-jobs/", status=502, retry_after=0)
        for path in ("contact-lists$", "batch-update$"):
            st.fault(method="POST", path=path, status=429, retry_after=0)
            st.fault(method="POST", path=path, status=500, after=True, retry_after=0)
        st.fault(method="GET", path="batch-update/", status=503, retry_after=0)
        config = write_config(tmp_path, kl, st)
        first, _ = run(cli, config)
        # So many faults on one batch can outlast the engine's retries: the rest of the
        # work is simply in the next run's plan.
        second, _ = run(cli, config)
        assert (first, second) == (1, 0)
        assert [f for f in (*kl.faults, *st.faults) if f.times] == [], "a fault never fired"
        assert_converged(kl, st)
        writes = (kl.write_calls, st.write_calls)
        assert run(cli, config)[0] == 0
        assert (kl.write_calls, st.write_calls) == writes


def test_check_reaches_both_services(cli, tmp_path):
    with services() as (kl, st):
        config = write_config(tmp_path, kl, st)
        result = cli("--config", config, "check")
    assert result.code == 0, result.stderr
    assert "Klaviyo" in result.stdout and "SimpleTexting" in result.stdout
    assert (kl.write_calls, st.write_calls) == (0, 0)
