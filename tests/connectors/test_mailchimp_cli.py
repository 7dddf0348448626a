"""``segsync run`` to Mailchimp through the real CLI: contacts Mailchimp holds as unsubscribed,
cleaned, archived or permanently deleted are never resubscribed, and the log says why."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.mailchimp import FakeMailchimp

import segsync.connectors.mailchimp as mailchimp_plugin
from segsync.plugins import extra_plugins, load_plugins

TAG = "Newsletter VIPs"
PEOPLE = {
    "ok": "ada.ok@customers.shop",
    "unsubscribed": "una.unsub@customers.shop",
    "cleaned": "cleo.bounced@customers.shop",
    "archived": "archie.archived@customers.shop",
    "forgotten": "fred.forgotten@customers.shop",
}


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp() as server:
        yield server


@contextlib.contextmanager
def mailchimp_registered() -> Iterator[None]:
    """The plugin, whether or not it is already one of the built-ins."""
    if "mailchimp" in load_plugins().destinations:
        yield
    else:
        with extra_plugins(mailchimp_plugin):
            yield


def write_config(folder: Path, fake: FakeMailchimp) -> None:
    """A POS customer export where everyone opted in, a segment of everyone subscribed, and
    a sync of it to the fake Mailchimp."""
    rows = ["id,email,first,last,consent"] + [
        f"c{i},{address},{state.title()},Shopper,subscribed"
        for i, (state, address) in enumerate(PEOPLE.items(), start=1)
    ]
    (folder / "customers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    table = fake.destination_config()
    (folder / "segsync.toml").write_text(f"""
as_of = 2026-11-01

[sources.shop]
type = "pos_csv"
path = "customers.csv"
stream = "customers"

[sources.shop.mapping]
customer_key = "id"
email = "email"
first_name = "first"
last_name = "last"
email_consent = "consent"

[destinations.mailchimp]
type = "mailchimp"
api_key = "{table['api_key']}"
audience_id = "{table['audience_id']}"
base_url = "{table['base_url']}"

[segments.subscribers]
query = "email_subscription_status = 'SUBSCRIBED'"

[syncs.newsletter]
segment = "subscribers"
destination = "mailchimp"
target = "{TAG}"
fields = {{ FNAME = "first_name", LNAME = "last_name" }}
""", encoding="utf-8")


SEEDS = {
    "unsubscribed": {"status": "unsubscribed"},
    "cleaned": {"status": "cleaned"},
    "archived": {"status": "subscribed", "archived": True},
}
REASONS = {
    "unsubscribed": "unsubscribed in Mailchimp",
    "cleaned": "cleaned (bounced) in Mailchimp",
    "archived": "archived in Mailchimp",
    "forgotten": "Forgotten Email Not Subscribed",
}


@pytest.mark.parametrize("state", ["unsubscribed", "cleaned", "archived", "forgotten"])
def test_a_contact_mailchimp_holds_as_refused_is_never_resubscribed(tmp_path, cli, fake, state):
    address = PEOPLE[state]
    if state == "forgotten":
        fake.seed(address, merge_fields={"FNAME": "Before"})
        fake.forget(address)
    else:
        fake.seed(address, merge_fields={"FNAME": "Before"}, **SEEDS[state])
    write_config(tmp_path, fake)

    with mailchimp_registered():
        first = cli("run", "--json")
        # Exit 1: the run went through, and one record was refused.
        assert first.code == 1, first.stderr
        summary = json.loads(first.stdout)["syncs"][0]
        assert (summary["added"], summary["rejected"]) == (len(PEOPLE) - 1, 1), summary
        log = json.loads(cli("log", "--json").stdout)
        second = cli("run", "--json")

    refused = [row for row in log if row["key"] == address]
    assert [(r["op"], r["outcome"]) for r in refused] == [("add", "rejected")]
    assert REASONS[state] in refused[0]["reason"]
    member = fake.member(address)
    if state == "forgotten":
        assert member is None and fake.is_forgotten(address)
    else:
        assert member.status == (SEEDS[state]["status"] if state != "archived" else "archived")
    assert address not in fake.tag_emails(TAG)
    assert fake.tag_emails(TAG) == {a for s, a in PEOPLE.items() if s != state}
    # Everyone else is subscribed, with their names, and the refusal is not re-sent.
    assert fake.member(PEOPLE["ok"]).status == "subscribed"
    assert fake.member(PEOPLE["ok"]).merge_fields == {"FNAME": "Ok", "LNAME": "Shopper"}
    again = json.loads(second.stdout)["syncs"][0]
    assert (second.code, again["write_calls"], again["suppressed"]) == (0, 0, 1), again
