"""The SimpleTexting destination against the strict fake, through the real plan → push engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.simpletexting import TOKEN, SimpleTextingFake
from helpers_killed import Killed, killed_after

import segsync.connectors.simpletexting as simpletexting_plugin
from segsync.connectors.simpletexting.config import SimpleTextingConfig
from segsync.connectors.simpletexting.destination import SimpleTextingDestination
from segsync.core.connector import Change
from segsync.core.errors import ConfigError, FatalError
from segsync.core.settings import SyncSettings
from segsync.core.testing import DestinationContract, SyncHarness
from segsync.plugins import extra_plugins, load_plugins


@pytest.fixture(autouse=True)
def plugin() -> Iterator[None]:
    """Register the connector unless it is a built-in already (registering twice fails)."""
    if "simpletexting" in load_plugins().destinations:
        yield
        return
    with extra_plugins(simpletexting_plugin):
        yield


@pytest.fixture
def fake() -> Iterator[SimpleTextingFake]:
    with SimpleTextingFake() as server:
        yield server


def destination(fake: SimpleTextingFake, folder: Path, **config: Any) -> SimpleTextingDestination:
    settings = SimpleTextingConfig.model_validate(
        {"api_token": TOKEN, "base_url": fake.url, "poll_interval": 0.001, **config},
        context={"base_dir": folder})
    return SimpleTextingDestination("texts", settings, folder)


def harness(dest: SimpleTextingDestination, *, consent: str = "subscribed",
            **options: Any) -> SyncHarness:
    sync = SyncSettings(segment="vip", destination="texts", target="VIP",
                        fields={"first_name": "first_name"}, consent=consent, options=options)
    return SyncHarness(dest, sync)


def phone(n: int) -> str:
    """A US number phonenumbers types FIXED_LINE_OR_MOBILE, as most US numbers are."""
    return f"+1202555{n:04d}"


def people(h: SyncHarness, numbers: range | list[int], **features: Any) -> None:
    for n in numbers:
        h.person(n, phone=phone(n), first_name=f"P{n}", sms_subscription_status="SUBSCRIBED",
                 **features)


class TestSimpleTextingContract(DestinationContract):
    @pytest.fixture
    def destination(self, fake, tmp_path):
        return destination(fake, tmp_path)

    @pytest.fixture
    def contract_keys(self) -> list[str]:
        # The default +1500… numbers are not mobile numbers, which this destination refuses.
        return [phone(1), phone(2), phone(3)]


def test_it_registers_as_a_destination():
    assert load_plugins().destination_class("simpletexting") is SimpleTextingDestination


def test_config_masks_the_token_and_caps_batches(tmp_path):
    config = SimpleTextingConfig.model_validate({"api_token": "st_secret"},
                                                context={"base_dir": tmp_path})
    assert config.base_url == "https://api-app2.simpletexting.com/v2"
    assert "st_secret" not in repr(config)
    for bad in ({"batch_size": 501}, {"base_url": "api.simpletexting.com"}):
        with pytest.raises(ValueError):
            SimpleTextingConfig.model_validate({"api_token": "t", **bad})


# -- the fake is strict ------------------------------------------------------------------------


def test_the_fake_replaces_lists_unless_told_not_to(fake):
    fake.add_list("Staff")
    fake.add_list("VIP")
    fake.add_contact("2025550001", lists=("Staff",))
    fake.add_contact("2025550002", lists=("Staff",))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.url, headers=headers) as http:
        # The documented defaults, upsert=true&listsReplacement=true, drop the other lists.
        assert http.post("/api/contacts", json={"contactPhone": "2025550001",
                                                "listIds": ["VIP"]}).status_code == 201
        http.post("/api/contacts?upsert=true&listsReplacement=false",
                  json={"contactPhone": "2025550002", "listIds": ["VIP"]})
        assert http.get("/api/contacts", headers={"Authorization": "Bearer nope"}
                        ).json()["errorCode"] == "ERR_AUTH_TOKEN_INVALID"
        assert http.post("/api/contact-lists", content=b'{"name": "x"}',
                         headers={"Content-Type": "text/plain"}).status_code == 415
        too_big = http.post("/api/contacts-batch/batch-update",
                            json={"updates": [{"contactPhone": "2025550003"}] * 501})
        assert too_big.status_code == 400
    assert fake.members_of("Staff") == {"+12025550002"}
    assert fake.members_of("VIP") == {"+12025550001", "+12025550002"}


def test_the_fake_answers_in_the_shapes_of_simpletextings_spec(fake):
    """api-doc.simpletexting.com's OpenAPI: lists read back carry ``listId``, creates answer
    ``{"id"}``, contacts carry ``contactId`` and their lists as ``{id, name}``."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.url, headers=headers) as http:
        created = http.post("/api/contact-lists", json={"name": "VIP"})
        assert (created.status_code, list(created.json())) == (201, ["id"])
        list_id = created.json()["id"]
        page = http.get("/api/contact-lists", params={"page": 0, "size": 10}).json()
        assert set(page) == {"content", "totalPages", "totalElements"}
        [item] = page["content"]
        assert (item["listId"], item["name"], "id" in item) == (list_id, "VIP", False)
        for ref in (list_id, "VIP"):
            assert http.get(f"/api/contact-lists/{ref}").json()["listId"] == list_id
        http.post("/api/contacts?listsReplacement=false",
                  json={"contactPhone": "2025550001", "listIds": [list_id]})
        [contact] = http.get("/api/contacts").json()["content"]
        assert "id" not in contact and contact["contactId"]
        assert contact["lists"] == [{"id": list_id, "name": "VIP"}]
        assert {"contactPhone", "firstName", "lastName", "email"} <= set(contact)
        task = http.post("/api/contacts-batch/batch-update",
                         json={"updates": [{"contactPhone": "2025550002"}],
                               "listsReplacement": False}).json()["id"]
        assert http.get(f"/api/contacts-batch/batch-update/{task}").status_code == 201
        too_long = http.post("/api/contact-lists", json={"name": "x" * 42})
        assert too_long.status_code == 400


# -- lists -----------------------------------------------------------------------------------


def test_a_list_is_looked_up_before_it_is_created_and_never_created_twice(fake, tmp_path):
    fake.add_list("VIP list")
    fake.fault(method="POST", path="contact-lists$", status=502, after=True)
    h = harness(destination(fake, tmp_path))
    people(h, [1, 2])
    assert h.run().added == 2
    assert len(fake.lists_named("VIP")) == 1
    assert fake.members_of("VIP") == {phone(1), phone(2)}
    assert len(fake.requests("POST", "contact-lists$")) == 1


def test_list_options_and_ambiguous_names(fake, tmp_path):
    chosen = fake.add_list("Texts")
    dest = destination(fake, tmp_path)
    assert dest.ensure_target("VIP", {"list_id": chosen}).remote_id == chosen
    with pytest.raises(FatalError) as missing:
        dest.ensure_target("VIP", {"list_id": "nope"})
    assert missing.value.status == 404
    with pytest.raises(ConfigError, match="unknown sync option"):
        dest.ensure_target("VIP", {"keyword": "JOIN"})
    fake.add_list("Twice")
    fake.add_list("Twice")
    with pytest.raises(ConfigError, match="2 SimpleTexting lists are named 'Twice'"):
        dest.ensure_target("Twice", {})
    # A name SimpleTexting would refuse is a config problem, found before any write.
    with pytest.raises(ConfigError, match="under 42 characters"):
        dest.ensure_target("A" * 42, {})
    assert fake.requests("POST") == []


# -- who may be sent -----------------------------------------------------------------------------


def test_only_consenting_mobile_numbers_are_sent(fake, tmp_path):
    h = harness(destination(fake, tmp_path), consent="not_opted_out")
    people(h, [1])
    h.person(2, phone=phone(2), sms_subscription_status="NOT_SUBSCRIBED")
    h.person(3, phone=phone(3), sms_subscription_status="PENDING")
    h.person(4, phone="+18005550100", sms_subscription_status="SUBSCRIBED")  # toll-free
    h.person(5, phone="+442071234567", sms_subscription_status="SUBSCRIBED")  # London landline
    h.person(6, phone="+447911123456", sms_subscription_status="SUBSCRIBED")  # UK mobile
    h.person(7, phone=phone(7), sms_subscription_status="UNSUBSCRIBED")
    result = h.run()
    assert (result.added, result.rejected, result.invalid) == (1, 5, 1)
    assert {key: reason for key, (_, _, reason) in h.outcomes().items()} == {
        phone(2): "no SMS marketing consent (NOT_SUBSCRIBED)",
        phone(3): "no SMS marketing consent (PENDING)",
        "+18005550100": "not a mobile number",
        "+442071234567": "not a mobile number",
        "+447911123456": "SimpleTexting texts US and Canadian (+1) numbers only",
    }
    sent = [u["contactPhone"] for r in fake.requests("POST", "batch-update$")
            for u in r.body["updates"]]
    assert sent == ["2025550001"]
    assert set(fake.contacts) == {"2025550001"}
    # A refusal for lacking consent lasts only until the person opts in.
    h.update(2, sms_subscription_status="SUBSCRIBED")
    assert (h.run().added, fake.members_of("VIP")) == (1, {phone(1), phone(2)})


def test_other_lists_and_opt_outs_are_never_touched(fake, tmp_path):
    fake.add_list("Staff")
    fake.add_contact("2025550001", lists=("Staff",))
    fake.add_contact("2025550002", lists=("Staff",), status="OPT_OUT")
    h = harness(destination(fake, tmp_path))
    people(h, [1, 2, 3])
    assert h.run().added == 3
    assert fake.members_of("VIP") == {phone(1), phone(2), phone(3)}
    assert fake.members_of("Staff") == {phone(1), phone(2)}
    assert fake.contact(phone(2)).subscription_status == "OPT_OUT"
    h.leave(1, 2)
    assert h.run(allow_large_removals=True).removed == 2
    assert fake.members_of("VIP") == {phone(3)}
    assert fake.members_of("Staff") == {phone(1), phone(2)}
    writes = [r for r in fake.log if r.method != "GET"]
    assert all(r.body["listsReplacement"] is False for r in writes if "batch" in r.path)
    assert not any("subscriptionStatus" in json.dumps(r.body) for r in writes)


# -- per-contact results ---------------------------------------------------------------------


def test_per_contact_task_errors_map_back_to_people(fake, tmp_path):
    fake.contact_errors["2025550002"] = ("CONTACT_UPDATE_FAILED", "Contact is blocked")
    fake.contact_errors["2025550003"] = ("CONTACT_IMPORT_LIMIT_IS_REACHED", "Limit reached")
    h = harness(destination(fake, tmp_path))
    people(h, [1, 2, 3])
    result = h.run()
    assert (result.added, result.rejected, result.failed) == (1, 1, 1)
    assert h.outcomes() == {
        phone(2): ("add", "rejected", "CONTACT_UPDATE_FAILED: Contact is blocked"),
        phone(3): ("add", "failed", "CONTACT_IMPORT_LIMIT_IS_REACHED: Limit reached")}
    # The account's limit is raised: the failed contact goes again, the refused one does not.
    del fake.contact_errors["2025550003"]
    result = h.run()
    assert (result.added, result.suppressed) == (1, 1)
    assert fake.members_of("VIP") == {phone(1), phone(3)}


def test_batches_of_at_most_500_and_one_call_per_removal(fake, tmp_path):
    h = harness(destination(fake, tmp_path, batch_size=2))
    people(h, range(1, 6))
    assert h.run().write_calls == 3
    assert [len(r.body["updates"]) for r in fake.requests("POST", "batch-update$")] == [2, 2, 1]
    # One removal is already gone from SimpleTexting: its 404 still means "not a member".
    fake.contacts["2025550005"].lists.clear()
    h.leave(4, 5)
    assert h.run(allow_large_removals=True).removed == 2
    assert len(fake.requests("DELETE", "/contacts/")) == 2
    assert fake.members_of("VIP") == {phone(1), phone(2), phone(3)}


# -- tasks ---------------------------------------------------------------------------------------


def test_a_task_id_is_persisted_before_polling_and_resumed_next_run(fake, tmp_path):
    fake.fault(method="GET", path="batch-update/", status=503, times=50)
    h = harness(destination(fake, tmp_path))
    people(h, [1, 2])
    assert h.run().status == "failed"
    [ledger] = tmp_path.glob("*.simpletexting-tasks.json")
    [entry] = json.loads(ledger.read_text())["jobs"].values()
    assert entry["id"] in fake.tasks
    fake.faults.clear()
    h.destination = destination(fake, tmp_path)
    assert h.run().added == 2
    assert len(fake.requests("POST", "batch-update$")) == 1
    assert json.loads(ledger.read_text())["jobs"] == {}


def test_a_slow_task_is_waited_for_before_newer_data(tmp_path):
    with SimpleTextingFake(task_steps=10_000) as fake:
        h = harness(destination(fake, tmp_path, task_timeout=0.05))
        people(h, [1])
        assert h.run().status == "failed"
        fake.task_steps = 1
        h.update(1, first_name="Newer")
        h.destination = destination(fake, tmp_path)
        assert h.run().added == 1
    assert fake.contact(phone(1)).fields["firstName"] == "Newer"
    assert [t.status for t in fake.tasks.values()] == ["DONE", "DONE"]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("path", ["contact-lists$", "batch-update$", "batch-update/",
                                  "/contacts/"])
def test_transient_failures_anywhere_converge(fake, tmp_path, path, status, after):
    h = harness(destination(fake, tmp_path, batch_size=2))
    people(h, range(1, 6))
    h.run()
    h.leave(1, 2)
    people(h, [6])
    fake.fault(path=path, status=status, after=after, times=2)
    h.run(allow_large_removals=True)
    h.run(allow_large_removals=True)
    assert fake.members_of("VIP") == {phone(n) for n in (3, 4, 5, 6)}
    assert len(fake.lists) == 1 and len(fake.contacts) == 6


# -- a killed push -------------------------------------------------------------------------------


def scenario(fake: SimpleTextingFake, folder: Path) -> SyncHarness:
    """A store whose next push joins two, updates one and removes two, over three batches,
    next to a list segsync does not manage."""
    fake.add_list("Staff")
    fake.add_contact("2025550001", lists=("Staff",))
    h = harness(destination(fake, folder, batch_size=2))
    people(h, range(1, 5))
    h.run()
    h.update(3, first_name="Changed")
    h.leave(1, 2)
    people(h, [5, 6])
    return h


def state(fake: SimpleTextingFake) -> dict[str, Any]:
    return {
        "vip": fake.members_of("VIP"),
        "staff": fake.members_of("Staff"),
        "lists": sorted(c.name for c in fake.lists.values()),
        "contacts": sorted((c.phone, c.fields.get("firstName"), c.subscription_status)
                           for c in fake.contacts.values()),
    }


def test_a_push_killed_after_any_http_call_converges_on_the_next_run(tmp_path):
    with SimpleTextingFake() as fake:
        h = scenario(fake, tmp_path / "clean")
        before = len(fake.log)
        h.run(allow_large_removals=True)
        calls, expected = len(fake.log) - before, state(fake)
    assert expected["vip"] == {phone(n) for n in (3, 4, 5, 6)}
    for n in range(1, calls + 1):
        with SimpleTextingFake() as fake:
            h = scenario(fake, tmp_path / str(n))
            with killed_after(n), pytest.raises(Killed):
                h.run(allow_large_removals=True)
            h.destination = destination(fake, tmp_path / str(n), batch_size=2)
            h.run(allow_large_removals=True)
            assert state(fake) == expected, f"killed after call {n}"
            writes = fake.write_calls
            assert h.run().write_calls == 0 and fake.write_calls == writes


def test_members_and_check(fake, tmp_path):
    dest = destination(fake, tmp_path)
    target = dest.ensure_target("VIP", {})
    dest.apply(target, [Change(phone(n), "add", consent="SUBSCRIBED") for n in range(1, 4)])
    fake.add_contact("2025550009")
    assert dest.members(target) == [phone(1), phone(2), phone(3)]
    assert dest.check() == [f"SimpleTexting at {fake.url} accepted the token"]
    bad = SimpleTextingConfig(api_token="wrong", base_url=fake.url)
    with pytest.raises(FatalError) as refused:
        SimpleTextingDestination("t", bad, tmp_path).check()
    assert refused.value.status == 401
