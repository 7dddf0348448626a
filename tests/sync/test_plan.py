"""Planning: desired set, consent gate, diff against the baseline, guardrails, config changes."""

from __future__ import annotations

import pytest

from segsync.core.errors import ConfigError
from segsync.core.measure.attributes import CONSENT_ENUM
from segsync.core.settings import SyncSettings
from segsync.core.sync.gate import OPTED_OUT
from segsync.core.sync.target import config_hash
from segsync.core.testing import MemoryDestination, SyncHarness


def make(
    fields: dict[str, str] | None = None, consent: str = "subscribed", **caps
) -> SyncHarness:
    sync = SyncSettings(
        segment="vip", destination="memory", fields=fields or {}, consent=consent
    )
    return SyncHarness(MemoryDestination(**caps), sync)


def add_people(h: SyncHarness, count: int, start: int = 1, **features) -> list[str]:
    keys = []
    for pid in range(start, start + count):
        key = f"p{pid}@shop.test"
        h.person(pid, email=key, email_subscription_status="SUBSCRIBED",
                 first_name=f"N{pid}", **features)
        keys.append(key)
    return keys


def changes(plan, op=None, classes=("send",)) -> list:
    return [c for c in plan.changes(classes) if op is None or c.op == op]


def keys(plan, op=None, classes=("send",)) -> set[str]:
    return {c.key for c in changes(plan, op, classes)}


def test_new_members_are_adds_with_their_fields_and_consent():
    h = make(fields={"first_name": "first_name"})
    add_people(h, 3)
    with h.plan() as plan:
        assert (plan.desired, plan.adds, plan.updates, plan.removes) == (3, 3, 0, 0)
        assert plan.invalid == 0 and plan.unchanged == 0
        summary = plan.summary()
        assert (summary["target"], summary["adds"], summary["held_reason"]) == ("vip", 3, None)
        adds = {c.key: c for c in changes(plan, "add")}
        assert set(adds) == {"p1@shop.test", "p2@shop.test", "p3@shop.test"}
        assert adds["p2@shop.test"].fields == {"first_name": "N2"}
        assert adds["p2@shop.test"].consent == "SUBSCRIBED"
        assert adds["p2@shop.test"].person_id == 2


def test_invalid_members_are_not_sent_and_counted_by_reason():
    h = make()
    add_people(h, 1)
    h.person(2, email=None, email_subscription_status="SUBSCRIBED")
    h.person(3, email="not-an-email", email_subscription_status="SUBSCRIBED")
    h.person(4, email="p4@shop.test", email_subscription_status="NOT_SUBSCRIBED")
    h.person(5, email="p5@shop.test", email_subscription_status="UNSUBSCRIBED")
    h.person(6, email="p1@shop.test", email_subscription_status="SUBSCRIBED")
    h.person(7, email="p7@shop.test", email_subscription_status="SUBSCRIBED", member=False)
    with h.plan() as plan:
        assert keys(plan) == {"p1@shop.test"}
        assert plan.invalid == 5
        assert plan.invalid_reasons == {
            "no valid email": 2,
            "consent NOT_SUBSCRIBED not allowed by policy subscribed": 1,
            "opted out (UNSUBSCRIBED)": 1,
            "duplicate email (another member is sent)": 1,
        }
        by_person = {pid: reason for pid, _key, reason in plan.invalid_people()}
        assert set(by_person) == {2, 3, 4, 5, 6}
        # The duplicate with the higher person id is the one left out.
        assert by_person[6].startswith("duplicate")
        assert changes(plan)[0].person_id == 1


EXPECTED = {
    "subscribed": {"SUBSCRIBED"},
    "subscribed_or_pending": {"SUBSCRIBED", "PENDING"},
    "not_opted_out": {"SUBSCRIBED", "PENDING", "NOT_SUBSCRIBED", None},
}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_consent_gate_sends_only_what_the_policy_allows(policy):
    h = make(consent=policy)
    statuses = [*CONSENT_ENUM, None]
    for pid, status in enumerate(statuses, start=1):
        h.person(pid, email=f"p{pid}@shop.test", email_subscription_status=status)
    with h.plan() as plan:
        sent = {c.consent for c in changes(plan)}
        assert sent == EXPECTED[policy]
        assert not sent & set(OPTED_OUT)
        assert plan.invalid == len(statuses) - len(EXPECTED[policy])


@pytest.mark.parametrize("policy", sorted(EXPECTED))
@pytest.mark.parametrize("status", OPTED_OUT)
def test_an_opted_out_member_is_only_ever_removed(policy, status):
    h = make(consent=policy)
    add_people(h, 6)
    assert h.run().added == 6
    h.update(1, email_subscription_status=status)
    with h.plan() as plan:
        assert [(c.key, c.op) for c in plan.changes()] == [("p1@shop.test", "remove")]
        assert changes(plan)[0].fields == {} and changes(plan)[0].consent is None
    h.run()
    # Gone from the baseline, the opted-out person is never planned again, under any policy.
    with h.plan() as plan:
        assert list(plan.changes(("send", "held", "suppressed"))) == []
        assert plan.invalid_reasons == {f"opted out ({status})": 1}
        assert plan.unchanged == 5


def test_an_opt_out_by_any_holder_of_a_key_vetoes_it():
    h = make()
    h.person(1, email="shared@shop.test", email_subscription_status="SUBSCRIBED")
    h.person(2, email="shared@shop.test", email_subscription_status="UNSUBSCRIBED")
    with h.plan() as plan:
        assert plan.to_send == 0
        assert plan.invalid_reasons == {
            "another person with this email opted out": 1,
            "opted out (UNSUBSCRIBED)": 1,
        }


def test_phone_destinations_use_sms_consent_and_e164_phones():
    h = make(identity="phone")
    h.person(1, phone="+15005550001", email_subscription_status="NOT_SUBSCRIBED",
             sms_subscription_status="SUBSCRIBED")
    h.person(2, phone="+15005550002", email_subscription_status="SUBSCRIBED",
             sms_subscription_status="UNSUBSCRIBED")
    h.person(3, phone="5005550003", sms_subscription_status="SUBSCRIBED")
    with h.plan() as plan:
        assert keys(plan) == {"+15005550001"}
        assert plan.invalid_reasons == {"opted out (UNSUBSCRIBED)": 1, "no valid phone": 1}


def test_changed_fields_are_updates_and_unchanged_members_are_not_sent():
    h = make(fields={"first_name": "first_name", "tier": "attributes.tier"})
    add_people(h, 3, attributes='{"tier": "gold"}')
    h.run()
    h.update(2, first_name="Renamed")
    with h.plan() as plan:
        assert (plan.adds, plan.updates, plan.removes, plan.unchanged) == (0, 1, 0, 2)
        [update] = changes(plan)
        assert (update.key, update.op) == ("p2@shop.test", "update")
        assert update.fields == {"first_name": "Renamed", "tier": "gold"}


def test_without_fields_a_feature_change_is_not_an_update():
    h = make()
    add_people(h, 2)
    h.run()
    h.update(1, first_name="Renamed")
    with h.plan() as plan:
        assert plan.to_send == 0 and plan.unchanged == 2


def test_members_who_leave_are_removed_only_where_removal_is_possible():
    h = make()
    add_people(h, 10)
    h.run()
    h.leave(3)
    with h.plan() as plan:
        assert (plan.removes, plan.baseline, plan.unchanged) == (1, 10, 9)
        [removal] = changes(plan)
        assert (removal.key, removal.op, removal.person_id) == ("p3@shop.test", "remove", 3)


def test_a_destination_that_cannot_remove_gets_no_removals():
    h = make(can_remove=False)
    add_people(h, 10)
    h.run()
    h.leave(3)
    with h.plan() as plan:
        assert (plan.removes, plan.held, plan.unchanged, plan.to_send) == (0, 0, 9, 0)


def test_guardrail_holds_removals_over_the_share_until_allowed():
    h = make()
    add_people(h, 10)
    h.run()
    h.leave(1, 2, 3)
    with h.plan(max_removal_share=0.2) as plan:
        assert (plan.removes, plan.held) == (0, 3)
        assert keys(plan, classes=("held",)) == {"p1@shop.test", "p2@shop.test", "p3@shop.test"}
        assert "3 removals exceed 20% of the 10" in plan.held_reason
    with h.plan(max_removal_share=0.3) as plan:
        assert (plan.removes, plan.held) == (3, 0)
    with h.plan(max_removal_share=0.2, allow_large_removals=True) as plan:
        assert (plan.removes, plan.held, plan.held_reason) == (3, 0, None)


def test_a_failed_pull_blocks_every_removal_but_not_adds():
    h = make()
    add_people(h, 10)
    h.run()
    h.leave(1)
    add_people(h, 1, start=11)
    with h.plan(removals_blocked=True, allow_large_removals=True) as plan:
        assert (plan.adds, plan.removes, plan.held) == (1, 0, 1)
        assert "source pull failed" in plan.held_reason


def test_planning_changes_nothing_in_the_store_or_at_the_destination():
    h = make(fields={"first_name": "first_name"})
    add_people(h, 5)
    h.destination.reject("p5@shop.test")
    h.run()
    h.leave(1)
    h.update(2, first_name="Renamed")
    add_people(h, 1, start=6)
    calls = (h.destination.apply_calls, h.destination.ensure_calls)
    before = list(h.db.conn.iterdump())
    with h.plan(allow_large_removals=True) as plan:
        assert (plan.adds, plan.updates, plan.removes, plan.suppressed) == (1, 1, 1, 1)
    assert list(h.db.conn.iterdump()) == before
    assert (h.destination.apply_calls, h.destination.ensure_calls) == calls


def test_a_config_change_resends_every_member_and_removes_the_rest():
    h = make(fields={"first_name": "first_name"})
    add_people(h, 4)
    h.run()
    h.leave(4)
    h.sync = h.sync.model_copy(update={"fields": {"given_name": "first_name"}})
    with h.plan(allow_large_removals=True) as plan:
        assert (plan.adds, plan.updates, plan.removes, plan.rediff) == (3, 0, 1, 3)
        assert keys(plan, "remove") == {"p4@shop.test"}
        assert changes(plan, "add")[0].fields == {"given_name": "N1"}
    assert h.run(allow_large_removals=True).status == "ok"
    assert h.destination.state("vip") == {
        f"p{i}@shop.test": {"given_name": f"N{i}"} for i in (1, 2, 3)
    }
    with h.plan() as plan:
        assert plan.to_send == 0 and plan.unchanged == 3


def test_config_hash_covers_the_destination_config_but_not_dict_order():
    dest = MemoryDestination()
    a = SyncSettings(segment="vip", destination="memory", fields={"a": "x", "b": "y"})
    b = SyncSettings(segment="vip", destination="memory", fields={"b": "y", "a": "x"})
    assert config_hash(a, dest) == config_hash(b, dest)
    assert config_hash(a, dest) != config_hash(a, MemoryDestination(max_batch=7))
    assert config_hash(a, dest) != config_hash(
        a.model_copy(update={"consent": "not_opted_out"}), dest
    )
    assert config_hash(a, dest) != config_hash(a.model_copy(update={"target": "t"}), dest)
    assert config_hash(a, dest) != config_hash(a.model_copy(update={"options": {"o": 1}}), dest)


def test_a_new_target_gets_everyone_and_the_old_one_is_released_untouched():
    h = make()
    add_people(h, 3)
    h.run()
    h.leave(3)
    h.sync = h.sync.model_copy(update={"target": "vip-2026"})
    with h.plan() as plan:
        assert plan.previous_target == "memory:vip"
        assert (plan.released, plan.baseline, plan.adds, plan.removes) == (3, 0, 2, 0)
    result = h.run()
    assert (result.status, result.released, result.added) == ("ok", 3, 2)
    assert h.destination.members_of("vip") == {"p1@shop.test", "p2@shop.test", "p3@shop.test"}
    assert h.destination.members_of("vip-2026") == {"p1@shop.test", "p2@shop.test"}
    released = h.db.execute(
        "SELECT count(*) FROM sync_log WHERE op = 'release' AND outcome = 'released'"
    ).fetchone()[0]
    assert released == 3
    with h.plan() as plan:
        assert plan.previous_target is None and plan.to_send == 0


def test_a_rejected_add_is_not_retried_until_its_payload_changes():
    h = make(fields={"first_name": "first_name"})
    add_people(h, 2)
    h.destination.reject("p1@shop.test", reason="Member In Compliance State")
    assert h.run().rejected == 1
    with h.plan() as plan:
        assert (plan.adds, plan.suppressed) == (0, 1)
        assert keys(plan, classes=("suppressed",)) == {"p1@shop.test"}
    h.update(1, first_name="Ada")
    with h.plan() as plan:
        assert (plan.adds, plan.suppressed) == (1, 0)


def test_a_rejected_add_is_retried_when_the_persons_consent_changes():
    # A destination may refuse someone for lacking consent; once they subscribe, try again.
    h = make(consent="subscribed_or_pending")
    add_people(h, 1)
    h.update(1, email_subscription_status="PENDING")
    h.destination.reject("p1@shop.test", reason="no email marketing consent")
    assert h.run().rejected == 1
    with h.plan() as plan:
        assert (plan.adds, plan.suppressed) == (0, 1)
    h.update(1, email_subscription_status="SUBSCRIBED")
    with h.plan() as plan:
        assert (plan.adds, plan.suppressed) == (1, 0)


def test_a_rejected_removal_is_not_retried_until_the_op_changes():
    h = make()
    add_people(h, 10)
    h.run()
    h.destination.reject("p1@shop.test")
    h.leave(1)
    assert h.run().rejected == 1
    with h.plan() as plan:
        assert (plan.removes, plan.suppressed) == (0, 1)
    h.join(1)
    with h.plan() as plan:
        # Back in the segment and still in the baseline: nothing to do, nothing suppressed.
        assert (plan.removes, plan.suppressed, plan.unchanged) == (0, 0, 10)


def test_an_add_that_may_have_landed_is_removed_when_no_longer_wanted():
    h = make()
    add_people(h, 1)
    h.destination.fail("after", times=3)  # applied, but every attempt "timed out"
    assert h.run().failed == 1
    assert h.baseline() == {}
    assert h.destination.members_of("vip") == {"p1@shop.test"}
    h.leave(1)
    with h.plan(allow_large_removals=True) as plan:
        assert [(c.key, c.op) for c in plan.changes()] == [("p1@shop.test", "remove")]
    h.run(allow_large_removals=True)
    assert h.destination.members_of("vip") == set()


def test_a_removal_that_may_have_landed_is_re_added_when_wanted_again():
    h = make()
    add_people(h, 1)
    h.run()
    h.leave(1)
    h.destination.fail("after", times=3)
    assert h.run(allow_large_removals=True).failed == 1
    assert h.destination.members_of("vip") == set()
    assert set(h.baseline()) == {"p1@shop.test"}
    h.join(1)
    with h.plan() as plan:
        assert [(c.key, c.op) for c in plan.changes()] == [("p1@shop.test", "add")]
    h.run()
    assert h.destination.members_of("vip") == {"p1@shop.test"}


def test_fields_are_checked_against_features_and_the_destination():
    h = make(fields={"first_name": "no_such_feature"})
    add_people(h, 1)
    with pytest.raises(ConfigError, match="no person feature named 'no_such_feature'"):
        h.plan()
    h.destination.config.fields = ()
    h.sync = h.sync.model_copy(update={"fields": {"first_name": "first_name"}})
    with pytest.raises(ConfigError, match="membership only"):
        h.plan()
    h.destination.config.fields = ("FNAME",)
    with pytest.raises(ConfigError, match="has no such field"):
        h.plan()


def test_send_order_is_adds_then_updates_then_removes():
    h = make(fields={"first_name": "first_name"})
    add_people(h, 10)
    h.run()
    h.leave(9)
    h.update(5, first_name="X")
    add_people(h, 1, start=11)
    with h.plan() as plan:
        assert [c.op for c in plan.changes()] == ["add", "update", "remove"]


def test_removals_say_why_the_member_is_no_longer_wanted():
    h = make()
    add_people(h, 8)
    h.run()
    h.leave(1)
    h.update(2, email_subscription_status="UNSUBSCRIBED")
    h.update(3, email="new3@shop.test")
    h.update(4, email=None)
    with h.plan(allow_large_removals=True) as plan:
        removals = {c.key: c for c in changes(plan, "remove")}
        reasons = {p.change.key: p.reason for b in plan.batches(10) for p in b
                   if p.change.op == "remove"}
        assert set(removals) == {f"p{i}@shop.test" for i in (1, 2, 3, 4)}
        assert reasons == {
            "p1@shop.test": "left the segment",
            "p2@shop.test": "opted out (UNSUBSCRIBED)",
            "p3@shop.test": "the person's email changed",
            "p4@shop.test": "no valid email",
        }
        assert keys(plan, "add") == {"new3@shop.test"}


def test_batch_pages_match_the_plan_table_row_by_row():
    """Pages are built as one JSON array in SQL; each change must still carry exactly its own
    stored payload, in seq order, across page boundaries, with removals carrying no fields."""
    import json

    h = make(fields={"first_name": "first_name"})
    add_people(h, 7)
    h.run()
    h.update(2, first_name='Zoë "the" \\ Ω')
    h.update(3, first_name=None)
    h.leave(5, 6)
    add_people(h, 4, start=20)
    with h.plan(allow_large_removals=True) as plan:
        table = {
            seq: (key, op, pid, consent, json.loads(payload) if payload else {}, reason)
            for seq, key, op, pid, consent, payload, reason in plan.db.execute(
                f"SELECT seq, key, op, person_id, consent, payload, reason FROM {plan.table} "
                "WHERE class = 'send'"
            ).fetchall()
        }
        pages = list(plan.batches(3))
        assert [len(page) for page in pages] == [3, 3, 2]
        got = {
            p.seq: (p.change.key, p.change.op, p.change.person_id, p.change.consent,
                    p.change.fields, p.reason)
            for page in pages for p in page
        }
        seqs = [p.seq for page in pages for p in page]
        assert seqs == sorted(table) and got == table
        assert {"first_name": 'Zoë "the" \\ Ω'} in [v[4] for v in got.values()]
        assert all(v[4] == {} for v in got.values() if v[1] == "remove")
