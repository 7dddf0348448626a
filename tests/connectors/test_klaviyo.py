"""The Klaviyo destination against the strict fake, through the real plan → push engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.klaviyo import API_KEY, JSONAPI, KlaviyoFake
from helpers_killed import Killed, killed_after

import segsync.connectors.klaviyo as klaviyo_plugin
from segsync.connectors.klaviyo.config import KlaviyoConfig
from segsync.connectors.klaviyo.destination import KlaviyoDestination
from segsync.core.connector import Change
from segsync.core.errors import ConfigError, FatalError, RetriableError
from segsync.core.retry import RetryPolicy
from segsync.core.settings import SyncSettings
from segsync.core.testing import DestinationContract, SyncHarness
from segsync.plugins import extra_plugins, load_plugins


@pytest.fixture(autouse=True)
def plugin() -> Iterator[None]:
    """Register the connector unless it is a built-in already (registering twice fails)."""
    if "klaviyo" in load_plugins().destinations:
        yield
        return
    with extra_plugins(klaviyo_plugin):
        yield


@pytest.fixture
def fake() -> Iterator[KlaviyoFake]:
    with KlaviyoFake() as server:
        yield server


def destination(fake: KlaviyoFake, folder: Path, **config: Any) -> KlaviyoDestination:
    settings = KlaviyoConfig.model_validate(
        {"api_key": API_KEY, "base_url": fake.url, "poll_interval": 0.001, **config},
        context={"base_dir": folder})
    return KlaviyoDestination("klaviyo", settings, folder)


def harness(dest: KlaviyoDestination, *, fields: dict[str, str] | None = None,
            consent: str = "subscribed", **options: Any) -> SyncHarness:
    sync = SyncSettings(segment="vip", destination="klaviyo", target="VIP",
                        fields=fields if fields is not None else {"first_name": "first_name"},
                        consent=consent, options=options)
    return SyncHarness(dest, sync)


def email(n: int) -> str:
    return f"person{n}@inbox-mail.com"


def people(h: SyncHarness, count: int, *, start: int = 1, **features: Any) -> None:
    for n in range(start, start + count):
        h.person(n, email=email(n), first_name=f"P{n}",
                 email_subscription_status="SUBSCRIBED", **features)


class TestKlaviyoContract(DestinationContract):
    @pytest.fixture
    def destination(self, fake, tmp_path):
        return destination(fake, tmp_path)


def test_it_registers_as_a_destination():
    assert load_plugins().destination_class("klaviyo") is KlaviyoDestination


def test_config_pins_a_revision_and_masks_the_key(tmp_path):
    config = KlaviyoConfig.model_validate({"api_key": "pk_secret"},
                                          context={"base_dir": tmp_path})
    assert config.revision == "2026-07-15" and config.state_dir == tmp_path
    assert "pk_secret" not in repr(config) and "pk_secret" not in json.dumps(
        config.model_dump(mode="json"))
    for bad in ({"revision": "latest"}, {"base_url": "a.klaviyo.com"}, {"batch_size": 1001}):
        with pytest.raises(ValueError):
            KlaviyoConfig.model_validate({"api_key": "k", **bad})


# -- the fake is strict, so passing tests mean well-formed requests ------------------------------


def test_the_fake_refuses_bad_keys_revisions_and_media_types(fake):
    good = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": "2026-07-15"}
    body = json.dumps({"data": {"type": "list", "attributes": {"name": "x"}}})
    with httpx.Client(base_url=fake.url) as http:
        assert http.get("/api/lists", headers={**good, "Authorization": "Bearer x"}
                        ).status_code == 401
        assert http.get("/api/lists", headers={"Authorization": good["Authorization"]}
                        ).status_code == 400
        assert http.get("/api/lists", headers={**good, "revision": "2019-01-01"}
                        ).status_code == 400
        refused = http.post("/api/lists", content=body,
                            headers={**good, "Content-Type": "application/json"})
        assert refused.status_code == 415
        assert refused.json()["errors"][0]["code"] == "unsupported_media_type"
        too_many = http.post(f"/api/lists/{fake.add_list('x')}/relationships/profiles",
                             headers={**good, "Content-Type": JSONAPI},
                             content=json.dumps({"data": [{"type": "profile", "id": "p"}]
                                                 * 1001}))
        assert too_many.status_code == 400
        assert too_many.json()["errors"][0]["source"] == {"pointer": "/data"}
        unsubscribe = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {
            "profiles": {"data": [{"type": "profile", "attributes": {"email": "a@b.co"}}]
                         * 101}}}}
        refused = http.post("/api/profile-subscription-bulk-delete-jobs",
                            content=json.dumps(unsubscribe),
                            headers={**good, "Content-Type": JSONAPI})
        assert refused.status_code == 400
        job = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {
            "data": [{"type": "profile", "attributes": {"email": "a@b.co"}}]}}}}
        created = http.post("/api/profile-bulk-import-jobs", content=json.dumps(job),
                            headers={**good, "Content-Type": JSONAPI})
        running = http.get("/api/profile-bulk-import-jobs", headers=good, params={
            "filter": 'any(status,["queued","processing"])'}).json()["data"]
    assert created.status_code == 202
    assert [j["id"] for j in running] == [created.json()["data"]["id"]]
    assert running[0]["attributes"]["status"] == "processing"
    assert fake.write_calls == 4 and fake.lists_named("x") and not fake.unsubscribe_jobs


def test_the_fake_rate_limits_per_endpoint_with_retry_after():
    with KlaviyoFake(rate_limit=(2, 60.0)) as fake, httpx.Client(base_url=fake.url) as http:
        headers = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": "2026-07-15"}
        answers = [http.get("/api/lists", headers=headers) for _ in range(3)]
        other = http.get("/api/profiles", headers=headers)
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Remaining"] == "1"
    assert 59 <= int(answers[2].headers["Retry-After"]) <= 60
    assert other.status_code == 200


# -- lists -----------------------------------------------------------------------------------


def test_a_list_is_looked_up_before_it_is_created_and_never_created_twice(fake, tmp_path):
    fake.add_list("VIP (old)")
    # The first create lands but its answer is lost: the retry must find it, not make another.
    fake.fault(method="POST", path="/api/lists$", status=504, after=True)
    dest = destination(fake, tmp_path)
    h = harness(dest)
    people(h, 2)
    assert h.run().status == "ok"
    assert len(fake.lists_named("VIP")) == 1
    assert fake.members_of("VIP") == {email(1), email(2)}
    assert destination(fake, tmp_path).ensure_target("VIP", {}).remote_id == \
        fake.lists_named("VIP")[0].id
    assert len(fake.requests("POST", "/api/lists$")) == 1


def test_list_options_choose_a_list_and_bad_options_are_config_errors(fake, tmp_path):
    chosen = fake.add_list("Newsletter")
    dest = destination(fake, tmp_path)
    assert dest.ensure_target("VIP", {"list_id": chosen}).remote_id == chosen
    with pytest.raises(FatalError) as missing:
        dest.ensure_target("VIP", {"list_id": "nope00"})
    assert missing.value.status == 404
    with pytest.raises(ConfigError, match="unknown sync option"):
        dest.ensure_target("VIP", {"status_if_new": "subscribed"})
    fake.add_list("Twice")
    fake.add_list("Twice")
    with pytest.raises(ConfigError, match="2 Klaviyo lists are named 'Twice'"):
        dest.ensure_target("Twice", {})


# -- profiles, import jobs and per-record outcomes ----------------------------------------------


def test_profiles_are_upserted_by_import_job_and_refused_rows_map_back(fake, tmp_path):
    fake.import_errors[email(2)] = ("invalid_email", "The email domain does not accept mail.")
    fake.invalid_emails.add(email(3))
    dest = destination(fake, tmp_path)
    h = harness(dest, fields={"first_name": "first_name", "city": "city", "vip": "amount_spent"})
    people(h, 4, city="Portland", amount_spent=120.5)
    result = h.run()
    assert (result.added, result.rejected) == (2, 2)
    outcomes = h.outcomes()
    assert outcomes[email(2)] == ("add", "rejected",
                                  "invalid_email: The email domain does not accept mail.")
    assert outcomes[email(3)][1] == "rejected" and "Invalid email" in outcomes[email(3)][2]
    assert fake.members_of("VIP") == {email(1), email(4)}
    assert fake.subscribed_emails() == {email(1), email(4)}
    profile = fake.find_profile(email(1))
    assert profile.attributes["first_name"] == "P1"
    assert (profile.location, profile.properties) == ({"city": "Portland"}, {"vip": 120.5})
    # The 400 rejected one row and the rest went again; the job's refusals came back by email.
    jobs = fake.requests("POST", "profile-bulk-import-jobs$")
    assert [len(r.body["data"]["attributes"]["profiles"]["data"]) for r in jobs] == [4, 3]
    assert len(fake.jobs) == 1 and fake.jobs.popitem()[1].status == "complete"
    # Refused people stay suppressed until they change; nothing is written again.
    writes = fake.write_calls
    assert h.run().suppressed == 2 and fake.write_calls == writes


def test_phone_numbers_are_sent_in_e164_and_bad_ones_refused_before_sending(fake, tmp_path):
    dest = destination(fake, tmp_path)
    outcomes = dest.apply(dest.ensure_target("VIP", {}), [
        Change(email(1), "add", fields={"phone_number": "+1 (202) 555-0101"},
               consent="SUBSCRIBED"),
        Change(email(2), "add", fields={"phone_number": "555-0102"}, consent="SUBSCRIBED"),
    ])
    assert {o.key: o.status for o in outcomes} == {email(1): "ok", email(2): "rejected"}
    assert fake.find_profile(email(1)).phone_number == "+12025550101"
    assert fake.find_profile(email(2)) is None


def test_a_profile_the_search_index_has_not_caught_up_with_is_found_through_its_409(
        fake, tmp_path):
    existing = fake.add_profile(email(1))
    fake.hidden_from_search.add(email(1))
    dest = destination(fake, tmp_path)
    h = harness(dest)
    people(h, 2)
    assert h.run().added == 2
    conflicts = [r for r in fake.requests("POST", "/api/profiles$") if r.status == 409]
    assert len(conflicts) == 1
    assert len(fake.profiles) == 2 and fake.find_profile(email(1)).id == existing
    assert fake.members_of("VIP") == {email(1), email(2)}


# -- consent ---------------------------------------------------------------------------------


def test_consent_is_granted_only_to_joiners_who_gave_it_and_never_reopened(fake, tmp_path):
    fake.add_profile(email(2), email_consent="UNSUBSCRIBED", suppression=["UNSUBSCRIBE"])
    fake.add_profile(email(3), suppression=["HARD_BOUNCE"])
    fake.add_profile(email(4), email_consent="SUBSCRIBED")
    dest = destination(fake, tmp_path)
    h = harness(dest, fields={"first_name": "first_name", "phone_number": "phone",
                              "sms_consent": "sms_subscription_status"},
                consent="not_opted_out")
    people(h, 4)
    h.person(5, email=email(5), email_subscription_status="NOT_SUBSCRIBED",
             phone="+12025550105", sms_subscription_status="SUBSCRIBED")
    h.person(6, email=email(6), email_subscription_status="UNSUBSCRIBED")
    h.person(7, email=email(7), email_subscription_status="SUBSCRIBED",
             phone="+12025550107", sms_subscription_status="UNSUBSCRIBED")
    assert h.run().added == 6
    channels = {p["email"]: p["channels"] for job in fake.subscribe_jobs
                for p in job["profiles"]}
    # 2 unsubscribed and 3 bounced at Klaviyo, 4 is subscribed already, 6 opted out here.
    assert channels == {email(1): ["email"], email(5): ["sms"], email(7): ["email"]}
    assert all(job["list"] == fake.lists_named("VIP")[0].id for job in fake.subscribe_jobs)
    assert (fake.find_profile(email(2)).email_consent, fake.find_profile(email(3)).suppression
            ) == ("UNSUBSCRIBED", ["HARD_BOUNCE"])
    assert fake.find_profile(email(5)).email_consent == "NEVER_SUBSCRIBED"
    assert fake.members_of("VIP") == {email(n) for n in (1, 2, 3, 4, 5, 7)}
    # 5 opts in to email here: the consent change sends 5 again, and Klaviyo is told.
    h.update(5, email_subscription_status="SUBSCRIBED")
    assert h.run().updated == 1
    assert fake.subscribe_jobs[-1]["profiles"] == [
        {"email": email(5), "phone_number": "+12025550105", "channels": ["email"]}]
    assert fake.find_profile(email(5)).email_consent == "SUBSCRIBED"


def test_updates_and_removals_never_touch_consent(fake, tmp_path):
    dest = destination(fake, tmp_path)
    h = harness(dest)
    people(h, 3)
    h.run()
    subscribes = len(fake.subscribe_jobs)
    h.update(1, first_name="Renamed")
    h.leave(2)
    result = h.run(allow_large_removals=True)
    assert (result.updated, result.removed) == (1, 1)
    assert len(fake.subscribe_jobs) == subscribes and fake.unsubscribe_jobs == []
    assert fake.find_profile(email(1)).attributes["first_name"] == "Renamed"
    assert fake.find_profile(email(2)).email_consent == "SUBSCRIBED"
    assert fake.members_of("VIP") == {email(1), email(3)}


def test_the_subscribe_option_turns_consent_granting_off(fake, tmp_path):
    h = harness(destination(fake, tmp_path), subscribe=False)
    people(h, 2)
    assert h.run().added == 2
    assert fake.subscribe_jobs == [] and fake.members_of("VIP") == {email(1), email(2)}


# -- batching, rate limits and jobs --------------------------------------------------------------


def test_batches_respect_limits_and_concurrency_and_removals_need_one_call(fake, tmp_path):
    dest = destination(fake, tmp_path, batch_size=4, max_concurrency=3)
    h = harness(dest)
    people(h, 10)
    result = h.run()
    assert (result.added, result.write_calls) == (10, 3)
    relationships = fake.requests("POST", "relationships")
    assert sorted(len(r.body["data"]) for r in relationships) == [2, 4, 4]
    h.leave(*range(1, 6))
    assert h.run(allow_large_removals=True).removed == 5
    assert sorted(len(r.body["data"]) for r in fake.requests("DELETE", "relationships")) == [1, 4]
    assert fake.members_of("VIP") == {email(n) for n in range(6, 11)}


def test_a_429_waits_for_klaviyos_retry_after(fake, tmp_path):
    waits: list[float] = []
    fake.fault(method="POST", path="relationships", status=429, retry_after=7)
    h = harness(destination(fake, tmp_path))
    h.retry = RetryPolicy(attempts=3, sleep=waits.append)
    people(h, 2)
    assert h.run().added == 2
    assert waits == [7.0]
    # The replayed batch adopted its import job instead of importing again.
    assert len(fake.requests("POST", "profile-bulk-import-jobs$")) == 1


def test_an_import_job_id_is_persisted_before_polling_and_resumed_next_run(fake, tmp_path):
    fake.fault(method="GET", path="profile-bulk-import-jobs/", status=503, times=50)
    h = harness(destination(fake, tmp_path))
    people(h, 3)
    result = h.run()
    assert result.status == "failed" and fake.members_of("VIP") == set()
    [ledger] = tmp_path.glob("*.klaviyo-jobs.json")
    [entry] = json.loads(ledger.read_text())["jobs"].values()
    assert entry["id"] in fake.jobs
    fake.faults.clear()
    # A new process: the job is waited for and adopted, never submitted again.
    h.destination = destination(fake, tmp_path)
    assert h.run().added == 3
    assert len(fake.requests("POST", "profile-bulk-import-jobs$")) == 1
    assert json.loads(ledger.read_text())["jobs"] == {}


def test_a_slow_job_is_left_for_later_and_waited_for_before_newer_data(tmp_path):
    with KlaviyoFake(job_steps=10_000) as fake:
        h = harness(destination(fake, tmp_path, job_timeout=0.05))
        people(h, 2)
        assert h.run().status == "failed"
        [job] = fake.jobs.values()
        assert job.status == "processing"
        fake.job_steps = 1
        h.update(1, first_name="Newer")
        h.destination = destination(fake, tmp_path)
        assert h.run().added == 2
    # The newer data went out after the old job finished, so the newer value stands.
    assert fake.find_profile(email(1)).attributes["first_name"] == "Newer"
    assert len(fake.jobs) == 2 and all(j.status == "complete" for j in fake.jobs.values())


def test_a_job_klaviyo_forgot_is_replaced(fake, tmp_path):
    dest = destination(fake, tmp_path)
    fake.fault(method="POST", path="relationships", status=503, times=10)
    h = harness(dest)
    h.retry = RetryPolicy(attempts=1)
    people(h, 1)
    assert h.run().status == "failed"
    fake.jobs.clear()
    h.destination = destination(fake, tmp_path)
    fake.faults.clear()
    assert h.run().added == 1
    assert len(fake.requests("POST", "profile-bulk-import-jobs$")) == 2


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("path", ["/api/lists$", "profile-bulk-import-jobs$",
                                  "profile-bulk-import-jobs/", "/api/profiles",
                                  "subscription-bulk", "relationships"])
def test_transient_failures_anywhere_converge(fake, tmp_path, path, status, after):
    fake.add_profile(email(9), email_consent="UNSUBSCRIBED")
    fake.hidden_from_search.add(email(2))
    fake.fault(path=path, status=status, after=after, retry_after=0, times=2)
    h = harness(destination(fake, tmp_path, batch_size=3), consent="not_opted_out")
    people(h, 5)
    h.person(9, email=email(9), email_subscription_status="SUBSCRIBED")
    h.run()
    h.run()
    assert fake.members_of("VIP") == {email(n) for n in (1, 2, 3, 4, 5, 9)}
    assert fake.subscribed_emails() == {email(n) for n in range(1, 6)}
    assert len({p.email for p in fake.profiles.values()}) == len(fake.profiles) == 6
    assert len(fake.lists) == 1


# -- a killed push -------------------------------------------------------------------------------


def scenario(fake: KlaviyoFake, folder: Path, phase: str) -> SyncHarness:
    """A store whose next push to ``fake`` does the work of ``phase``: a first upload over
    two batches, or updates, removals and joins after one."""
    fake.add_profile(email(8), email_consent="UNSUBSCRIBED")
    h = harness(destination(fake, folder, batch_size=3, max_concurrency=2),
                consent="not_opted_out")
    people(h, 5)
    h.person(8, email=email(8), email_subscription_status="SUBSCRIBED")
    if phase == "changes":
        h.run()
        h.update(1, first_name="Changed")
        h.leave(2, 3)
        people(h, 2, start=6)
    return h


def state(fake: KlaviyoFake) -> dict[str, Any]:
    return {
        "members": fake.members_of("VIP"),
        "lists": sorted(k.name for k in fake.lists.values()),
        "profiles": sorted((p.email, p.attributes.get("first_name"), p.email_consent)
                           for p in fake.profiles.values()),
        "subscribed": fake.subscribed_emails(),
        "unsubscribed": fake.unsubscribe_jobs,
    }


@pytest.mark.parametrize("phase", ["first", "changes"])
def test_a_push_killed_after_any_http_call_converges_on_the_next_run(tmp_path, phase):
    with KlaviyoFake() as fake:
        h = scenario(fake, tmp_path / "clean", phase)
        before = len(fake.log)
        h.run(allow_large_removals=True)
        calls, expected = len(fake.log) - before, state(fake)
    assert expected["members"] and email(8) not in expected["subscribed"]
    killed = 0
    for n in range(1, calls + 1):
        with KlaviyoFake() as fake:
            h = scenario(fake, tmp_path / f"{phase}-{n}", phase)
            # Two batches in flight poll at their own pace, so a run may need a call less
            # than the reference and finish before the n-th.
            with killed_after(n):
                try:
                    h.run(allow_large_removals=True)
                except Killed:
                    killed += 1
            h.destination = destination(fake, tmp_path / f"{phase}-{n}", batch_size=3,
                                        max_concurrency=2)
            h.run(allow_large_removals=True)
            assert state(fake) == expected, f"killed after call {n}"
            writes = fake.write_calls
            assert h.run().write_calls == 0 and fake.write_calls == writes
    assert killed >= calls - 2


def test_members_lists_the_list_for_reconcile(fake, tmp_path):
    dest = destination(fake, tmp_path)
    target = dest.ensure_target("VIP", {})
    dest.apply(target, [Change(email(n), "add", consent="SUBSCRIBED") for n in range(1, 26)])
    assert dest.members(target) == sorted(email(n) for n in range(1, 26))
    assert dest.check() == [f"Klaviyo at {fake.url} accepted the key (revision 2026-07-15)"]
    with pytest.raises(FatalError) as refused:
        KlaviyoDestination("k", KlaviyoConfig(api_key="pk_wrong", base_url=fake.url),
                           tmp_path).check()
    assert refused.value.status == 401


def test_a_job_still_running_after_the_timeout_is_a_retriable_error(tmp_path):
    with KlaviyoFake(job_steps=10_000) as fake:
        dest = destination(fake, tmp_path, job_timeout=0.02)
        target = dest.ensure_target("VIP", {})
        with pytest.raises(RetriableError, match="still processing"):
            dest.apply(target, [Change(email(1), "add", consent="SUBSCRIBED")])
