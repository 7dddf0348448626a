"""Identity resolution: normalisation, merging, stable ids, and consent that never flips to yes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.core.ingest.identifiers import normalise_email, normalise_phone
from segsync.core.ingest.resolve import resolve
from segsync.core.ingest.writer import StoreWriter
from segsync.core.records import OPT_OUT_STATES, Customer
from segsync.core.store import open_store


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Bob.Norman@HostMail.com ", "bob.norman@hostmail.com"),
        ("'ann@shop.co.uk'", "ann@shop.co.uk"),
        ("<zoe@example.org>", "zoe@example.org"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_email(raw, expected):
    assert normalise_email(raw)[0] == expected


@pytest.mark.parametrize("raw", ["not-an-email", "a@b", "two@@signs.com", "sp ace@x.com"])
def test_invalid_email_has_a_reason(raw):
    value, reason = normalise_email(raw)
    assert value is None and reason.startswith("invalid email")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("'+15623972052", "US", "+15623972052"),
        ("3106503746", "US", "+13106503746"),
        ("13108921848", "US", "+13108921848"),
        ("(310) 703-8944", "US", "+13107038944"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_normalise_phone(raw, region, expected):
    assert normalise_phone(raw, region) == (expected, None)


@pytest.mark.parametrize("raw", ["12345", "call me", "+1 000 000 0000"])
def test_invalid_phone_has_a_reason(raw):
    value, reason = normalise_phone(raw, "US")
    assert value is None and reason.startswith("invalid phone")


def load(db, source, customers, run_id):
    with StoreWriter(db, source, run_id=run_id, timezone="UTC", default_region="US") as w:
        for c in customers:
            w.write(c)
    return resolve(db, run_id)


def person_of(db, source, key):
    return db.execute("SELECT person_id FROM customers WHERE source = ? AND key = ?",
                      [source, key]).fetchone()[0]


def test_records_sharing_email_or_phone_become_one_person():
    db = open_store(":memory:")
    load(db, "shopify", [Customer("1", email="ann@x.com"),
                         Customer("2", phone="212-555-0134")], 1)
    load(db, "square", [Customer("A", email="ANN@x.com", phone="+1 212 555 0134"),
                        Customer("B", email="bob@x.com")], 2)
    assert person_of(db, "shopify", "1") == person_of(db, "shopify", "2") == person_of(
        db, "square", "A")
    assert person_of(db, "square", "B") != person_of(db, "shopify", "1")
    assert db.execute("SELECT count(*) FROM people").fetchone()[0] == 2


def test_identity_links_index_every_identifier_by_person():
    db = open_store(":memory:")
    load(db, "a", [Customer("1", email="Ann@X.com", phone="212-555-0134", link_id="square:9"),
                   Customer("2", email="bob@x.com")], 1)
    ann, bob = person_of(db, "a", "1"), person_of(db, "a", "2")
    assert db.execute("SELECT kind, value, person_id FROM identity_links ORDER BY 1, 2"
                      ).fetchall() == [("email", "ann@x.com", ann), ("email", "bob@x.com", bob),
                                       ("link_id", "square:9", ann),
                                       ("phone", "+12125550134", ann)]


def test_shared_link_id_joins_records_without_email():
    db = open_store(":memory:")
    load(db, "dir", [Customer("S1", link_id="square:S1", email="zoe@x.com")], 1)
    load(db, "items", [Customer("S1", link_id="square:S1")], 2)
    assert person_of(db, "dir", "S1") == person_of(db, "items", "S1")


def test_invalid_identifiers_never_link():
    db = open_store(":memory:")
    load(db, "a", [Customer("1", email="not an email"), Customer("2", email="not an email")], 1)
    assert person_of(db, "a", "1") != person_of(db, "a", "2")
    assert db.execute("SELECT email, email_error IS NOT NULL FROM customers").fetchall() == [
        (None, 1), (None, 1)]


def test_person_ids_are_stable_and_the_older_id_survives_a_merge():
    db = open_store(":memory:")
    load(db, "a", [Customer("1", email="ann@x.com"), Customer("2", phone="2125550134")], 1)
    ann, other = person_of(db, "a", "1"), person_of(db, "a", "2")
    load(db, "a", [Customer("1", email="ann@x.com"), Customer("2", phone="2125550134")], 2)
    assert (person_of(db, "a", "1"), person_of(db, "a", "2")) == (ann, other)
    # A new record links both: one person, keeping the smaller (older) id.
    counts = load(db, "b", [Customer("9", email="ann@x.com", phone="2125550134")], 3)
    assert counts["merged"] == 1
    assert {person_of(db, "a", "1"), person_of(db, "a", "2"), person_of(db, "b", "9")} == {
        min(ann, other)}
    assert db.execute("SELECT old_id, new_id FROM person_merges").fetchall() == [
        (max(ann, other), min(ann, other))]


def test_a_split_keeps_the_id_on_one_side_and_gives_the_other_a_new_one():
    db = open_store(":memory:")
    load(db, "a", [Customer("1", email="ann@x.com"), Customer("2", email="ann@x.com")], 1)
    shared = person_of(db, "a", "1")
    load(db, "a", [Customer("2", email="annie@y.com")], 2)
    ids = {person_of(db, "a", "1"), person_of(db, "a", "2")}
    assert shared in ids and len(ids) == 2


def test_orders_follow_their_customer_to_the_person(tmp_path):
    from segsync.core.records import Order

    db = open_store(":memory:")
    with StoreWriter(db, "pos", run_id=1, timezone="UTC", default_region="US") as w:
        w.write(Customer("c1", email="ann@x.com"))
        w.write(Order("o1", dt.datetime(2026, 1, 1), 5.0, customer_key="c1"))
        w.write(Order("o2", dt.datetime(2026, 1, 2), 7.0, email="ANN@x.com"))
    resolve(db, 1)
    assert db.execute("SELECT count(DISTINCT person_id) FROM orders").fetchone()[0] == 1


def test_profile_takes_the_latest_values_and_unions_tags():
    db = open_store(":memory:")
    load(db, "a", [Customer("1", email="ann@x.com", first_name="Ann", city="Leeds",
                            tags=["vip"], updated_at=dt.datetime(2026, 1, 1),
                            attributes={"tier": "gold", "interest": "crime"})], 1)
    load(db, "b", [Customer("2", email="ann@x.com", city="York", tags=["book-club"],
                            updated_at=dt.datetime(2026, 5, 1), attributes={"tier": "silver"})],
         2)
    row = db.execute("SELECT first_name, city, tags, attributes, sources FROM people").fetchone()
    assert row == ("Ann", "York", '["book-club","vip"]',
                   '{"interest":"crime","tier":"silver"}', '["a","b"]')


T0 = dt.datetime(2026, 1, 1)


def consent(state, days=None):
    return (state, None if days is None else T0 + dt.timedelta(days=days))


def merged_email_consent(records):
    db = open_store(":memory:")
    load(db, "s", [
        Customer(str(i), email="same@x.com", email_consent=state, email_consent_at=at)
        for i, (state, at) in enumerate(records)
    ], 1)
    return db.execute("SELECT email_consent FROM people").fetchone()[0]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([consent("subscribed", 5), consent("unsubscribed", 9)], "unsubscribed"),
        ([consent("unsubscribed", 5), consent("subscribed", 9)], "subscribed"),
        ([consent("subscribed"), consent("unsubscribed")], "unsubscribed"),
        ([consent("subscribed", 9), consent("unsubscribed")], "unsubscribed"),
        ([consent("subscribed", 5), consent("unsubscribed", 5)], "unsubscribed"),
        ([consent("subscribed"), consent("not_subscribed")], "subscribed"),
        ([consent("not_subscribed", 9), consent("subscribed")], "not_subscribed"),
        ([consent("cleaned"), consent("subscribed", 9)], "cleaned"),
        ([consent(None), consent("pending")], "pending"),
    ],
)
def test_consent_merge_rules(records, expected):
    assert merged_email_consent(records) == expected


states = st.sampled_from(["subscribed", "not_subscribed", "pending", "unsubscribed",
                          "cleaned", "redacted", None])
record = st.tuples(states, st.one_of(st.none(), st.integers(0, 5)))


@settings(max_examples=150, deadline=None)
@given(st.lists(record, min_size=1, max_size=5))
def test_consent_merge_never_turns_an_opt_out_into_an_opt_in(records):
    result = merged_email_consent([consent(s, d) for s, d in records])
    known = [(s, d) for s, d in records if s is not None]
    if not known:
        assert result is None
        return
    untimed_opt_out = any(s in OPT_OUT_STATES and d is None for s, d in known)
    if untimed_opt_out:
        assert result in OPT_OUT_STATES
    timed = [(d, s) for s, d in known if d is not None]
    if timed and not untimed_opt_out:
        latest = max(d for d, _ in timed)
        latest_states = {s for d, s in timed if d == latest}
        if latest_states & OPT_OUT_STATES:
            assert result in OPT_OUT_STATES
        else:
            assert result in latest_states
    if result == "subscribed":
        # Subscribed wins only when some record says so and no opt-out is as new or undated.
        assert any(s == "subscribed" for s, _ in known)
