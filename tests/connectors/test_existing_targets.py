"""Mailchimp, Klaviyo and SimpleTexting when the target is already there, or half-written.

Each destination runs through the real plan → push engine against its strict fake (which
answers in the vendor's documented shapes) in the two situations an unattended job meets
after its first day (issue 11):

* **The target exists before segsync's first run**: made by hand with people already in it,
  chosen through the ``list_id`` option (Klaviyo and SimpleTexting; a Mailchimp tag is only
  ever found by name), or filled by an earlier run whose database is gone.
* **The first run failed after the destination applied its write**: the create of the target,
  the contact upsert or the membership call lands, then the answer is a 5xx or the connection
  drops, on every retry (after a create, the writes that follow fail so), so the run ends
  failed.

Either way the next run converges: one target, each person once, everyone wanted in it, and a
run after that makes no write call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.klaviyo import API_KEY, KlaviyoFake
from fakes.mailchimp import FakeMailchimp
from fakes.simpletexting import TOKEN, SimpleTextingFake

from segsync.connectors.klaviyo.config import KlaviyoConfig
from segsync.connectors.klaviyo.destination import KlaviyoDestination
from segsync.connectors.mailchimp.config import MailchimpConfig
from segsync.connectors.mailchimp.destination import MailchimpDestination
from segsync.connectors.simpletexting.config import SimpleTextingConfig
from segsync.connectors.simpletexting.destination import SimpleTextingDestination
from segsync.core.connector import Destination
from segsync.core.settings import SyncSettings
from segsync.core.testing import SyncHarness

TARGET = "VIP customers"
#: Every retry of the run hits the fault: the first run must end failed, not recover.
EVERY_RETRY = 50


@dataclass
class Vendor:
    """What the scenarios need to know of one destination and its fake."""

    name: str
    #: The fake, served by ``with vendor.serve() as fake``.
    serve: Callable[[], Any]
    make: Callable[[Any, Path], Destination]
    key: Callable[[int], str]
    features: Callable[[int], dict[str, Any]]
    #: The sync's field mapping (Mailchimp's merge tags are upper case).
    fields: dict[str, str]
    #: Create the target by hand, holding these keys; its remote id.
    by_hand: Callable[[Any, str, list[str]], str]
    #: The remote ids of the targets called ``name``.
    targets: Callable[[Any, str], list[str]]
    #: The keys in the target called ``name``.
    members: Callable[[Any, str], set[str]]
    #: The identity of every contact the account holds (duplicates included).
    contacts: Callable[[Any], list[str]]
    #: Write step → arm a fault that applies the write, then fails it (5xx or drop); every
    #: fake keeps its armed faults in ``fake.faults``.
    fail_after: dict[str, Callable[[Any, bool], None]]
    by_id: bool


# -- Mailchimp ---------------------------------------------------------------------------------


def _mailchimp(fake: FakeMailchimp, folder: Path) -> Destination:
    return MailchimpDestination("mailchimp",
                                MailchimpConfig(**fake.destination_config(timeout=5)), folder)


def _mailchimp_by_hand(fake: FakeMailchimp, name: str, keys: list[str]) -> str:
    for key in keys:
        fake.seed(key)
    # Made in Mailchimp's UI, spelled in its own case: Mailchimp matches tags ignoring it.
    return str(fake.create_tag(name.upper(), tuple(keys)))


def _mailchimp_fault(route: str) -> Callable[[FakeMailchimp, bool], None]:
    def arm(fake: FakeMailchimp, drop: bool) -> None:
        fake.fail("disconnect_after" if drop else "error_after", route, times=EVERY_RETRY)
    return arm


MAILCHIMP = Vendor(
    name="mailchimp",
    serve=FakeMailchimp,
    make=_mailchimp,
    key=lambda n: f"person{n}@inbox-mail.com",
    features=lambda n: {"email": f"person{n}@inbox-mail.com", "first_name": f"P{n}",
                        "email_subscription_status": "SUBSCRIBED"},
    fields={"FNAME": "first_name"},
    by_hand=_mailchimp_by_hand,
    targets=lambda fake, name: [str(s.id) for s in fake.tags_named(name)],
    members=lambda fake, name: fake.tag_emails(name),
    contacts=lambda fake: [m.email.lower() for a in fake.lists.values()
                           for m in a.members.values()],
    fail_after={
        "target": _mailchimp_fault("POST /lists/{list_id}/segments"),
        # A join is the contact's batch subscribe carrying the tag: contacts and membership
        # in one call (the segment batch only takes leaves, which a first run has none of).
        "contacts": _mailchimp_fault("POST /lists/{list_id}"),
    },
    by_id=False,
)


# -- Klaviyo -----------------------------------------------------------------------------------


def _klaviyo(fake: KlaviyoFake, folder: Path) -> Destination:
    config = KlaviyoConfig.model_validate(
        {"api_key": API_KEY, "base_url": fake.url, "poll_interval": 0.001},
        context={"base_dir": folder})
    return KlaviyoDestination("klaviyo", config, folder)


def _klaviyo_by_hand(fake: KlaviyoFake, name: str, keys: list[str]) -> str:
    list_id = fake.add_list(name)
    for key in keys:
        fake.lists[list_id].members.add(fake.add_profile(key, email_consent="SUBSCRIBED"))
    return list_id


def _scripted(path: str, method: str = "POST") -> Callable[[Any, bool], None]:
    """A fault of the Klaviyo and SimpleTexting fakes: applied, then 503 or dropped."""
    def arm(fake: Any, drop: bool) -> None:
        fake.fault(method=method, path=path, status=503, after=True, drop=drop,
                   times=EVERY_RETRY)
    return arm


KLAVIYO = Vendor(
    name="klaviyo",
    serve=KlaviyoFake,
    make=_klaviyo,
    key=lambda n: f"person{n}@inbox-mail.com",
    features=lambda n: {"email": f"person{n}@inbox-mail.com", "first_name": f"P{n}",
                        "email_subscription_status": "SUBSCRIBED"},
    fields={"first_name": "first_name"},
    by_hand=_klaviyo_by_hand,
    targets=lambda fake, name: [k.id for k in fake.lists_named(name)],
    members=lambda fake, name: fake.members_of(name),
    contacts=lambda fake: [p.email for p in fake.profiles.values()],
    fail_after={
        "target": _scripted("/api/lists$"),
        "contacts": _scripted("/api/profile-bulk-import-jobs$"),
        "membership": _scripted("/relationships/profiles$"),
    },
    by_id=True,
)


# -- SimpleTexting -----------------------------------------------------------------------------


def _simpletexting(fake: SimpleTextingFake, folder: Path) -> Destination:
    config = SimpleTextingConfig.model_validate(
        {"api_token": TOKEN, "base_url": fake.url, "poll_interval": 0.001},
        context={"base_dir": folder})
    return SimpleTextingDestination("texts", config, folder)


def _simpletexting_by_hand(fake: SimpleTextingFake, name: str, keys: list[str]) -> str:
    list_id = fake.add_list(name)
    for key in keys:
        fake.add_contact(key.removeprefix("+1"), lists=(list_id,))
    return list_id


SIMPLETEXTING = Vendor(
    name="simpletexting",
    serve=SimpleTextingFake,
    make=_simpletexting,
    key=lambda n: f"+1202555{n:04d}",
    features=lambda n: {"phone": f"+1202555{n:04d}", "first_name": f"P{n}",
                        "sms_subscription_status": "SUBSCRIBED"},
    fields={"first_name": "first_name"},
    by_hand=_simpletexting_by_hand,
    targets=lambda fake, name: [c.id for c in fake.lists_named(name)],
    members=lambda fake, name: fake.members_of(name),
    contacts=lambda fake: [c.phone for c in fake.contacts.values()],
    fail_after={
        "target": _scripted("contact-lists$"),
        # One batch update both upserts the contacts and puts them in the list.
        "contacts": _scripted("batch-update$"),
    },
    by_id=True,
)

VENDORS = [MAILCHIMP, KLAVIYO, SIMPLETEXTING]
FAILED_WRITES = [(v, step) for v in VENDORS for step in v.fail_after]


# -- helpers -----------------------------------------------------------------------------------


def harness(vendor: Vendor, destination: Destination, **options: Any) -> SyncHarness:
    sync = SyncSettings(segment="vip", destination=destination.name, target=TARGET,
                        fields=vendor.fields, options=options)
    return SyncHarness(destination, sync)


def join(vendor: Vendor, h: SyncHarness, numbers: range) -> None:
    for n in numbers:
        h.person(n, **vendor.features(n))


def assert_converged(vendor: Vendor, fake: Any, h: SyncHarness, wanted: set[str],
                     remote_id: str | None = None) -> None:
    """One target (``remote_id`` when given) holding everyone wanted, each contact once; the
    baseline confirms them all and the next run writes nothing."""
    targets = vendor.targets(fake, TARGET)
    assert len(targets) == 1, f"{len(targets)} targets named {TARGET!r}"
    if remote_id is not None:
        assert targets == [remote_id]
    assert wanted <= vendor.members(fake, TARGET)
    contacts = vendor.contacts(fake)
    assert len(contacts) == len(set(contacts)), "a contact was duplicated"
    assert set(h.baseline()) == wanted
    again = h.run()
    assert (again.status, again.write_calls) == ("ok", 0), again


# -- the target exists before the first run ---------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_target_made_by_hand_is_adopted_with_the_people_already_in_it(vendor, tmp_path):
    with vendor.serve() as fake:
        stranger = vendor.key(99)
        remote_id = vendor.by_hand(fake, TARGET, [vendor.key(1), vendor.key(2), stranger])
        h = harness(vendor, vendor.make(fake, tmp_path))
        join(vendor, h, range(1, 6))
        result = h.run()
        assert (result.status, result.added) == ("ok", 5), result
        wanted = {vendor.key(n) for n in range(1, 6)}
        assert_converged(vendor, fake, h, wanted, remote_id)
        # Someone segsync never sent is not its to remove.
        assert stranger in vendor.members(fake, TARGET)


@pytest.mark.parametrize("vendor", [v for v in VENDORS if v.by_id], ids=lambda v: v.name)
def test_a_target_chosen_by_id_is_used_whatever_its_name(vendor, tmp_path):
    with vendor.serve() as fake:
        remote_id = vendor.by_hand(fake, "Made by hand", [vendor.key(1)])
        h = harness(vendor, vendor.make(fake, tmp_path), list_id=remote_id)
        join(vendor, h, range(1, 4))
        result = h.run()
        assert (result.status, result.added) == ("ok", 3), result
        assert vendor.targets(fake, TARGET) == [], "a list was created despite list_id"
        assert vendor.members(fake, "Made by hand") == {vendor.key(n) for n in range(1, 4)}
        contacts = vendor.contacts(fake)
        assert len(contacts) == len(set(contacts))
        assert h.run().write_calls == 0


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_fresh_database_adopts_what_an_earlier_one_pushed(vendor, tmp_path):
    with vendor.serve() as fake:
        first = harness(vendor, vendor.make(fake, tmp_path / "old"))
        join(vendor, first, range(1, 6))
        assert first.run().added == 5
        [remote_id] = vendor.targets(fake, TARGET)
        # The database is lost (a new machine, a deleted volume); the account is not.
        h = harness(vendor, vendor.make(fake, tmp_path / "new"))
        join(vendor, h, range(1, 8))
        result = h.run()
        assert (result.status, result.added) == ("ok", 7), result
        assert_converged(vendor, fake, h, {vendor.key(n) for n in range(1, 8)}, remote_id)


# -- the first run failed after the destination applied the write -----------------------------


@pytest.mark.parametrize("drop", [False, True], ids=["5xx", "drop"])
@pytest.mark.parametrize("vendor, step", FAILED_WRITES,
                         ids=[f"{v.name}-{s}" for v, s in FAILED_WRITES])
def test_a_first_run_failed_after_its_write_landed_converges_next_run(vendor, step, drop,
                                                                      tmp_path):
    with vendor.serve() as fake:
        h = harness(vendor, vendor.make(fake, tmp_path))
        join(vendor, h, range(1, 6))
        vendor.fail_after[step](fake, drop)
        if step == "target":
            # The retry's lookup finds a create that landed, within the same run; the run
            # fails only when what follows keeps failing too.
            vendor.fail_after["contacts"](fake, drop)
        first = h.run()
        assert first.status == "failed" and first.added == 0, first
        fake.faults.clear()
        # The next scheduled run: a new process, the same database and state folder.
        h.destination = vendor.make(fake, tmp_path)
        result = h.run()
        assert (result.status, result.added) == ("ok", 5), result
        assert_converged(vendor, fake, h, {vendor.key(n) for n in range(1, 6)})
