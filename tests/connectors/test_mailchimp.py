"""The Mailchimp destination against the fake: config, contract, consent, fields, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.mailchimp import API_KEY, LIST_ID, FakeMailchimp
from pydantic import ValidationError

from segsync.connectors.mailchimp.config import MailchimpConfig
from segsync.connectors.mailchimp.destination import NO_CONSENT, MailchimpDestination
from segsync.core.connector import Change, Outcome
from segsync.core.errors import ConfigError, FatalError, RetriableError
from segsync.core.testing import DestinationContract

TAG = "Winback"


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp(record=True) as server:
        yield server


def make(fake: FakeMailchimp, **config) -> MailchimpDestination:
    cfg = MailchimpConfig(**fake.destination_config(**config))
    return MailchimpDestination("mailchimp", cfg, Path.cwd())


def add(key: str, consent: str = "SUBSCRIBED", **fields) -> Change:
    return Change(key, "add", fields=fields, consent=consent)


def by_key(outcomes: list[Outcome]) -> dict[str, tuple[str, str | None]]:
    return {o.key: (o.status, o.reason) for o in outcomes}


class TestMailchimpContract(DestinationContract):
    @pytest.fixture
    def destination(self, fake: FakeMailchimp) -> MailchimpDestination:
        # The contract sends a ``first_name`` field: an audience with that merge tag.
        list_id = fake.add_audience("Contract", merge_fields=("FIRST_NAME",))
        return make(fake, audience_id=list_id)


# -- configuration ----------------------------------------------------------------------------


def test_the_data_centre_comes_from_the_key():
    config = MailchimpConfig(api_key="abc123-us19", audience_id="x")
    assert config.endpoint == "https://us19.api.mailchimp.com/3.0"
    assert "abc123" not in str(config.model_dump())  # the key stays masked


@pytest.mark.parametrize("table, message", [
    ({"api_key": "no-data-centre!", "audience_id": "x"}, "data centre"),
    ({"api_key": "k-us1"}, "exactly one of audience_id or audience"),
    ({"api_key": "k-us1", "audience_id": "x", "audience": "Shop"}, "exactly one"),
    ({"api_key": "k-us1", "audience_id": "x", "max_concurrency": 11}, "less than or equal"),
    ({"api_key": "k-us1", "audience_id": "x", "base_url": "ftp://x"}, "http"),
])
def test_bad_config_is_refused(table, message):
    with pytest.raises(ValidationError, match=message):
        MailchimpConfig(**table)


def test_the_audience_is_found_by_name_and_must_be_unique(fake):
    assert make(fake, audience_id=None, audience="Marginalia Customers").list_id() == LIST_ID
    with pytest.raises(ConfigError, match="no Mailchimp audience named 'Nope'"):
        make(fake, audience_id=None, audience="Nope").list_id()
    fake.add_audience("Marginalia Customers")
    with pytest.raises(ConfigError, match="2 audiences are named"):
        make(fake, audience_id=None, audience="Marginalia Customers").list_id()


def test_check_reports_the_audience_and_a_bad_key_is_fatal(fake):
    fake.seed("a@customers.shop")
    assert make(fake).check() == [
        "audience 'Marginalia Customers' (a1b2c3d4e5), 1 subscribed contacts"]
    with pytest.raises(FatalError, match="API Key Invalid") as caught:
        make(fake, api_key="wrong-us19").check()
    assert caught.value.status == 401


def test_bad_sync_options_are_config_errors(fake):
    with pytest.raises(ConfigError, match="options.mode"):
        make(fake).ensure_target(TAG, {"mode": "list"})
    with pytest.raises(ConfigError, match="options.colour: unknown option"):
        make(fake).ensure_target(TAG, {"colour": "blue"})


# -- the tag ----------------------------------------------------------------------------------


def test_an_existing_tag_is_found_whatever_its_case(fake):
    existing = fake.create_tag("winBACK")
    target = make(fake).ensure_target(TAG, {})
    assert target.remote_id == str(existing)
    assert fake.calls["POST /lists/{list_id}/segments"] == 0


def test_ensure_target_after_a_lost_create_finds_the_tag_instead_of_a_second(fake):
    destination = make(fake)
    fake.fail("error_after", "POST /lists/{list_id}/segments")
    with pytest.raises(RetriableError):
        destination.ensure_target(TAG, {})
    target = destination.ensure_target(TAG, {})
    assert [str(s.id) for s in fake.tags_named(TAG)] == [target.remote_id]


def test_duplicate_tags_made_by_someone_else_stop_the_sync(fake):
    fake.create_tag(TAG)
    fake.create_tag(TAG.upper())
    with pytest.raises(FatalError, match="2 Mailchimp tags are named"):
        make(fake).ensure_target(TAG, {})


def test_members_are_read_a_thousand_at_a_time(fake):
    emails = [f"m{i}@Customers.shop" for i in range(2500)]
    for address in emails:
        fake.seed(address, tags=(TAG,))
    destination = make(fake)
    members = destination.members(destination.ensure_target(TAG, {}))
    assert members == sorted(a.lower() for a in emails)
    assert fake.calls["GET /lists/{list_id}/segments/{segment_id}/members"] == 3


# -- consent and status -----------------------------------------------------------------------


def sent_members(fake: FakeMailchimp) -> list[dict]:
    return [m for method, route, body in fake.recorded
            if (method, route) == ("POST", "/lists/{list_id}") for m in body["members"]]


def test_new_contacts_get_their_consent_and_existing_ones_keep_their_status(fake):
    fake.seed("pending@customers.shop", "pending")
    fake.seed("admin-unsub@customers.shop", "unsubscribed", unsubscribe_source="admin")
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    outcomes = by_key(destination.apply(target, [
        add("new@customers.shop"),
        add("pending@customers.shop"),
        add("admin-unsub@customers.shop"),
        add("no-consent@customers.shop", consent="NOT_SUBSCRIBED"),
    ]))
    assert outcomes["new@customers.shop"] == ("ok", None)
    assert outcomes["pending@customers.shop"] == ("ok", None)
    assert outcomes["admin-unsub@customers.shop"][0] == "rejected"
    assert outcomes["no-consent@customers.shop"] == ("rejected", NO_CONSENT)
    assert fake.member("new@customers.shop").status == "subscribed"
    assert fake.member("pending@customers.shop").status == "pending"
    assert fake.member("admin-unsub@customers.shop").status == "unsubscribed"
    assert fake.member("no-consent@customers.shop") is None
    assert fake.tag_emails(TAG) == {"new@customers.shop", "pending@customers.shop"}
    # Never a ``status``, only ``status_if_new``, and never a member PUT or PATCH.
    assert all("status" not in m for m in sent_members(fake))
    assert not any(method in ("PUT", "PATCH") for method, _r, _b in fake.recorded)


@pytest.mark.parametrize("state, seed", [
    ("unsubscribed", {"status": "unsubscribed", "unsubscribe_source": "admin"}),
    ("unsubscribed", {"status": "unsubscribed", "unsubscribe_source": "self"}),
    ("cleaned", {"status": "cleaned"}),
    ("archived", {"status": "subscribed", "archived": True}),
])
def test_a_refused_contact_is_never_sent_so_never_tagged(fake, state, seed):
    """Batch subscribe tags existing contacts whatever their status (the fake does too), so a
    contact Mailchimp holds as refused must not be in any batch subscribe at all."""
    address = "refused@customers.shop"
    fake.seed(address, merge_fields={"FNAME": "Before"}, **seed)
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    outcomes = by_key(destination.apply(target, [
        add(address, FNAME="After"), add("fine@customers.shop"),
        Change(address, "update", fields={"FNAME": "After"}, consent="SUBSCRIBED"),
    ]))
    assert outcomes[address][0] == "rejected" and state in outcomes[address][1]
    assert outcomes["fine@customers.shop"] == ("ok", None)
    assert address not in {m["email_address"] for m in sent_members(fake)}
    assert fake.tag_emails(TAG) == {"fine@customers.shop"}
    member = fake.member(address)
    assert (member.status, member.merge_fields) == (
        "archived" if state == "archived" else state, {"FNAME": "Before"})
    # One read per refused status, each a page of addresses only.
    assert fake.calls["GET /lists/{list_id}/members"] == 3


def test_refused_contacts_are_read_a_thousand_addresses_at_a_time(fake):
    unsubscribed = [f"u{i}@customers.shop" for i in range(1500)]
    for address in unsubscribed:
        fake.seed(address, "unsubscribed")
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    outcomes = by_key(destination.apply(target, [add(unsubscribed[-1]), add("a@customers.shop")]))
    assert [outcomes[k][0] for k in (unsubscribed[-1], "a@customers.shop")] == [
        "rejected", "ok"]
    # Two pages of unsubscribed contacts, one each of cleaned and archived ones.
    assert fake.calls["GET /lists/{list_id}/members"] == 4
    assert fake.tag_emails(TAG) == {"a@customers.shop"}


def test_a_contact_who_unsubscribes_after_the_read_is_untagged_in_the_same_apply(fake):
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    destination.apply(target, [add("early@customers.shop")])  # the run's statuses are read
    fake.seed("late@customers.shop", "unsubscribed")  # … and then someone unsubscribes
    writes = fake.write_calls
    outcomes = by_key(destination.apply(target, [add("late@customers.shop"),
                                                 add("b@customers.shop")]))
    assert outcomes["late@customers.shop"] == (
        "rejected", "unsubscribed in Mailchimp: segsync never resubscribes a contact")
    assert outcomes["b@customers.shop"] == ("ok", None)
    assert fake.member("late@customers.shop").status == "unsubscribed"
    assert fake.tag_emails(TAG) == {"early@customers.shop", "b@customers.shop"}
    assert fake.write_calls - writes == 2  # the batch subscribe, then the untagging
    assert fake.calls["GET /lists/{list_id}/members"] == 3  # read once for the run
    destination.ensure_target(TAG, {})  # the next sync reads them afresh
    destination.apply(target, [add("late@customers.shop")])
    assert fake.calls["GET /lists/{list_id}/members"] == 6
    assert fake.write_calls - writes == 2


def test_non_subscribed_contacts_can_be_created_as_transactional(fake):
    destination = make(fake)
    target = destination.ensure_target(TAG, {"non_subscribed": "transactional"})
    outcomes = destination.apply(target, [add("t@customers.shop", consent="NOT_SUBSCRIBED")])
    assert by_key(outcomes) == {"t@customers.shop": ("ok", None)}
    assert fake.member("t@customers.shop").status == "transactional"


# -- fields -----------------------------------------------------------------------------------


def test_merge_tags_are_upper_case_and_nulls_are_not_sent(fake):
    fake.seed("ada@customers.shop", merge_fields={"FNAME": "Ada", "LNAME": "Lovelace"})
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    change = Change("ada@customers.shop", "update", fields={"fname": None, "lname": "King"},
                    consent="SUBSCRIBED")
    assert by_key(destination.apply(target, [change])) == {"ada@customers.shop": ("ok", None)}
    assert fake.member("ada@customers.shop").merge_fields == {"FNAME": "Ada", "LNAME": "King"}
    assert sent_members(fake)[-1]["merge_fields"] == {"LNAME": "King"}
    # An update changes fields only: no tags, no membership call.
    assert "tags" not in sent_members(fake)[-1]
    assert fake.calls["POST /lists/{list_id}/segments/{segment_id}"] == 0


def test_field_refusals_are_per_record(fake):
    list_id = fake.add_audience("Strict", merge_fields=("FNAME",), required=("BIRTHDAY",))
    destination = make(fake, audience_id=list_id)
    target = destination.ensure_target(TAG, {})
    outcomes = by_key(destination.apply(target, [
        add("fine@customers.shop", FNAME="A", BIRTHDAY="01/02"),
        add("unknown@customers.shop", FNAME="A", BIRTHDAY="01/02", SHOE="42"),
        add("missing@customers.shop", FNAME="A"),
        add("robot@example.com", FNAME="A", BIRTHDAY="01/02"),
    ]))
    assert outcomes["fine@customers.shop"] == ("ok", None)
    assert "merge_fields.SHOE" in outcomes["unknown@customers.shop"][1]
    assert "merge_fields.BIRTHDAY" in outcomes["missing@customers.shop"][1]
    assert "looks fake or invalid" in outcomes["robot@example.com"][1]
    assert {s for s, _ in outcomes.values()} == {"ok", "rejected"}
    lenient = make(fake, audience_id=list_id, skip_merge_validation=True)
    again = lenient.apply(target, [add("missing@customers.shop", FNAME="A")])
    assert by_key(again) == {"missing@customers.shop": ("ok", None)}


# -- membership -------------------------------------------------------------------------------


def test_re_adds_and_absent_removals_are_done(fake):
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    batch = [add("a@customers.shop"), add("b@customers.shop")]
    destination.apply(target, batch)
    assert {s for s, _ in by_key(destination.apply(target, batch)).values()} == {"ok"}
    removals = [Change("a@customers.shop", "remove"), Change("never@customers.shop", "remove")]
    for _ in range(2):
        assert {s for s, _ in by_key(destination.apply(target, removals)).values()} == {"ok"}
    assert fake.tag_emails(TAG) == {"b@customers.shop"}


# -- throttling and failures ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["throttle", "bodiless_403", "error_before"])
def test_throttles_and_5xx_on_a_batch_are_retriable(fake, kind):
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    fake.fail(kind, "POST /lists/{list_id}")
    with pytest.raises(RetriableError):
        destination.apply(target, [add("a@customers.shop")])
    assert by_key(destination.apply(target, [add("a@customers.shop")])) == {
        "a@customers.shop": ("ok", None)}


def test_a_403_with_a_body_is_not_a_throttle(fake):
    fake.fail("error_before", status=403)
    with pytest.raises(FatalError, match="Forbidden") as caught:
        make(fake).check()
    assert caught.value.status == 403


def test_membership_is_written_500_contacts_per_call_by_default(fake):
    """Issue 11: the default once made one tags call per person (15 writes for 13 people)."""
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    keys = [f"p{i}@customers.shop" for i in range(13)]
    assert {s for s, _ in by_key(destination.apply(target, [add(k) for k in keys])).values()} \
        == {"ok"}
    # The tag, then one batch subscribe that creates the contacts and tags them; never the
    # per-contact tags endpoint, and no segment batch for joins.
    assert fake.write_calls == 2
    assert fake.calls["POST /lists/{list_id}/members/{member}/tags"] == 0
    assert fake.calls["POST /lists/{list_id}/segments/{segment_id}"] == 0
    assert {m["email_address"]: m["tags"] for m in sent_members(fake)} == {
        k: [TAG] for k in keys}
    assert fake.tag_emails(TAG) == set(keys)
    removals = [Change(k, "remove") for k in keys[:5]]
    assert {s for s, _ in by_key(destination.apply(target, removals)).values()} == {"ok"}
    assert fake.write_calls == 3  # five removals, one call
    assert fake.tag_emails(TAG) == set(keys[5:])


def test_the_tag_is_sent_as_mailchimp_spells_it(fake):
    fake.create_tag("winBACK")
    destination = make(fake)
    target = destination.ensure_target(TAG, {})
    destination.apply(target, [add("a@customers.shop")])
    assert sent_members(fake)[-1]["tags"] == ["winBACK"]
    assert [s.name for s in fake.tags_named(TAG)] == ["winBACK"]
    assert fake.tag_emails(TAG) == {"a@customers.shop"}


def test_mode_tag_from_an_older_config_still_runs_batched_with_a_warning(fake, caplog):
    destination = make(fake)
    with caplog.at_level("WARNING", "segsync.mailchimp"):
        target = destination.ensure_target(TAG, {"mode": "tag"})
    assert 'options.mode = "tag" is no longer needed' in caplog.text
    destination.apply(target, [add("a@customers.shop"), add("b@customers.shop")])
    assert fake.calls["POST /lists/{list_id}/members/{member}/tags"] == 0
    assert fake.calls["POST /lists/{list_id}"] == 1
    assert fake.tag_emails(TAG) == {"a@customers.shop", "b@customers.shop"}


def test_the_client_authenticates_with_the_key_as_password(fake):
    destination = make(fake)
    assert destination.client.http.auth is not None
    assert destination.client.ping() == "Everything's Chimpy!"
    assert API_KEY not in repr(destination.config)
