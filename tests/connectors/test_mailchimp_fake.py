"""The fake Mailchimp itself, spoken to with raw HTTP: the rules the connector tests rely on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fakes.mailchimp import API_KEY, LIST_ID, FakeMailchimp, subscriber_hash

LIST = f"/lists/{LIST_ID}"


@pytest.fixture
def fake() -> Iterator[FakeMailchimp]:
    with FakeMailchimp() as server:
        yield server


@pytest.fixture
def http(fake: FakeMailchimp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, auth=("anystring", API_KEY), timeout=5) as client:
        yield client


def member_path(email: str) -> str:
    return f"{LIST}/members/{subscriber_hash(email)}"


def test_errors_are_problem_documents_and_the_key_is_checked(fake):
    with httpx.Client(base_url=fake.url, auth=("u", "wrong-us19")) as client:
        response = client.get("/ping")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "API Key Invalid" and body["status"] == 401
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert response.headers["X-Request-Id"] == body["instance"]


def test_the_subscriber_hash_is_the_md5_of_the_lower_cased_address(fake, http):
    assert subscriber_hash("Urist.McVankab@freddiesjokes.com") == (
        "62eeb292278cc15f5817cb78f7790b08")
    fake.seed("Mixed.Case@customers.shop")
    by_email = http.get(f"{LIST}/members/mixed.case@customers.shop").json()
    assert by_email["id"] == subscriber_hash("mixed.case@customers.shop")


def test_the_member_state_machine(fake, http):
    fake.seed("self@customers.shop", "unsubscribed", unsubscribe_source="self")
    fake.seed("admin@customers.shop", "unsubscribed", unsubscribe_source="admin")
    fake.seed("archived@customers.shop", archived=True)
    fake.seed("cleaned@customers.shop", "cleaned")
    fake.seed("stuck@customers.shop", removable=False)

    def put(email: str, **body) -> httpx.Response:
        return http.put(member_path(email), json={"email_address": email, **body})

    refused = put("self@customers.shop", status="subscribed")
    assert refused.json()["title"] == "Member In Compliance State"
    assert put("self@customers.shop", status="pending").json()["status"] == "pending"
    assert put("admin@customers.shop", status="subscribed").json()["status"] == "subscribed"
    assert put("cleaned@customers.shop", status="subscribed").json()["title"] == (
        "Member In Compliance State")
    assert "cleaned" in put("cleaned@customers.shop", merge_fields={"FNAME": "x"}).text
    # Only an explicit status unarchives.
    assert put("archived@customers.shop", status_if_new="subscribed").json()["status"] == (
        "archived")
    assert put("archived@customers.shop", status="subscribed").json()["status"] == "subscribed"
    patched = http.patch(member_path("pending-free@customers.shop"), json={"status": "x"})
    assert patched.status_code == 404
    listed = http.get(f"{LIST}/members", params={"status": "cleaned"}).json()
    assert [m["email_address"] for m in listed["members"]] == ["cleaned@customers.shop"]
    exists = http.post(f"{LIST}/members", json={"email_address": "admin@customers.shop",
                                                 "status": "subscribed"})
    assert exists.json()["title"] == "Member Exists"
    assert http.delete(member_path("stuck@customers.shop")).status_code == 405
    assert http.delete(member_path("admin@customers.shop")).status_code == 204
    assert fake.member("admin@customers.shop").status == "archived"
    http.post(member_path("admin@customers.shop") + "/actions/delete-permanent")
    assert put("admin@customers.shop", status_if_new="subscribed").json()["title"] == (
        "Forgotten Email Not Subscribed")
    tags = http.post(member_path("nobody@customers.shop") + "/tags",
                     json={"tags": [{"name": "VIP", "status": "active"}]})
    assert tags.status_code == 404
    assert "looks fake" in put("bot@example.com", status_if_new="subscribed").text


def test_batch_subscribe_limits_duplicates_and_per_member_errors(fake, http):
    fake.seed("old@customers.shop", "unsubscribed")
    over = [{"email_address": f"m{i}@customers.shop", "status_if_new": "subscribed"}
            for i in range(501)]
    assert http.post(LIST, json={"members": over}).status_code == 400
    answer = http.post(LIST, json={"members": [
        {"email_address": "new@customers.shop", "status_if_new": "subscribed"},
        {"email_address": "NEW@customers.shop", "status_if_new": "subscribed"},
        {"email_address": "old@customers.shop", "status_if_new": "subscribed"},
    ]}).json()
    assert [m["email_address"] for m in answer["new_members"]] == ["new@customers.shop"]
    assert [e["error_code"] for e in answer["errors"]] == ["ERROR_GENERIC",
                                                           "ERROR_CONTACT_EXISTS"]
    updated = http.post(LIST, json={"update_existing": True, "members": [
        {"email_address": "old@customers.shop", "status_if_new": "subscribed"}]}).json()
    assert updated["updated_members"][0]["status"] == "unsubscribed"


def test_batch_subscribe_tags_new_and_existing_contacts_whatever_their_status(fake, http):
    fake.seed("sub@customers.shop", tags=("Old",))
    fake.seed("unsub@customers.shop", "unsubscribed")
    fake.seed("gone@customers.shop", archived=True)
    members = [{"email_address": e, "status_if_new": "subscribed", "tags": ["VIP"]}
               for e in ("new@customers.shop", "sub@customers.shop", "unsub@customers.shop",
                         "gone@customers.shop")]
    answer = http.post(LIST, json={"members": members, "update_existing": True}).json()
    assert answer["error_count"] == 0
    assert fake.tag_emails("vip") == {m["email_address"] for m in members}
    assert fake.tag_emails("Old") == {"sub@customers.shop"}  # other tags stay …
    assert fake.member("unsub@customers.shop").status == "unsubscribed"
    assert fake.member("gone@customers.shop").status == "archived"
    http.post(LIST, json={"update_existing": True, "sync_tags": True, "members": [
        {"email_address": "sub@customers.shop", "tags": ["New"]}]})
    assert fake.tag_emails("Old") == set()  # … unless sync_tags replaces them
    assert fake.tag_emails("New") == {"sub@customers.shop"}
    for bad in ({"members": [], "surprise": 1},
                {"members": [{"email_address": "x@customers.shop", "status_if_new":
                              "subscribed", "tag": ["VIP"]}]},
                {"members": [{"email_address": "x@customers.shop", "status_if_new":
                              "subscribed", "tags": [{"name": "VIP"}]}]}):
        refused = http.post(LIST, json=bad)
        assert refused.status_code == 400 and refused.json()["title"] == "Invalid Resource"
    assert fake.member("x@customers.shop") is None


def test_tags_and_segment_batches(fake, http):
    fake.seed("a@customers.shop")
    fake.seed("b@customers.shop")
    created = http.post(f"{LIST}/segments", json={"name": "VIP", "static_segment": []}).json()
    twice = http.post(f"{LIST}/segments", json={"name": "VIP", "static_segment": []}).json()
    assert created["id"] != twice["id"] and len(fake.tags_named("vip")) == 2
    segment = f"{LIST}/segments/{created['id']}"
    answer = http.post(segment, json={"members_to_add": ["a@customers.shop",
                                                         "ghost@customers.shop"]}).json()
    assert (answer["total_added"], answer["errors"]) == (1, [])
    again = http.post(segment, json={"members_to_add": ["a@customers.shop"],
                                     "members_to_remove": ["b@customers.shop"]}).json()
    assert again["total_added"] == again["total_removed"] == 0
    assert len(again["errors"]) == 2
    assert http.post(segment, json={"members_to_add": ["x@y.z"] * 501}).status_code == 400
    listed = http.get(f"{segment}/members", params={"count": 1000}).json()
    assert [m["email_address"] for m in listed["members"]] == ["a@customers.shop"]
    assert http.get(f"{segment}/members", params={"count": 1001}).status_code == 400
    search = http.get(f"{LIST}/tag-search", params={"name": "vi"}).json()
    assert search["total_items"] == 2
    assert http.get(segment).json()["member_count"] == 1
    assert http.delete(f"{LIST}/segments/{twice['id']}").status_code == 204
    assert len(fake.tags_named("VIP")) == 1


def test_an_eleventh_simultaneous_request_is_refused(fake):
    fake.latency = 0.5
    statuses: list[int] = []
    # Clients are built before the barrier: building one takes long enough to spread the
    # requests out otherwise.
    clients = [httpx.Client(base_url=fake.url, auth=("u", API_KEY), timeout=5)
               for _ in range(11)]
    barrier = threading.Barrier(11)

    def ping(client: httpx.Client) -> None:
        barrier.wait()
        statuses.append(client.get("/ping").status_code)

    threads = [threading.Thread(target=ping, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert sorted(statuses) == [200] * 10 + [429]
    assert (fake.peak, fake.refused) == (11, 1)


@pytest.mark.parametrize("kind, applied", [("error_before", False), ("error_after", True),
                                           ("disconnect_after", True),
                                           ("truncate_after", True)])
def test_faults_happen_before_or_after_the_write(fake, http, kind, applied):
    fake.fail(kind, "write")
    body = {"email_address": "a@customers.shop", "status_if_new": "subscribed"}
    if kind in ("disconnect_after", "truncate_after"):
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(member_path("a@customers.shop"), json=body)
    else:
        assert http.put(member_path("a@customers.shop"), json=body).status_code == 503
    assert (fake.member("a@customers.shop") is not None) == applied
    assert fake.write_calls == 1 and fake.calls["PUT /lists/{list_id}/members/{member}"] == 1


def test_a_timeout_fault_holds_the_answer_past_the_client_timeout(fake):
    fake.hang = 0.5
    fake.fail("timeout_after", "write")
    with httpx.Client(base_url=fake.url, auth=("u", API_KEY), timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.put(member_path("late@customers.shop"),
                       json={"email_address": "late@customers.shop",
                             "status_if_new": "subscribed"})
    assert fake.member("late@customers.shop") is not None


def test_fields_cut_an_answer_to_what_was_asked_for(fake, http):
    fake.create_tag("VIP", ())
    full = http.get(f"{LIST}/segments", params={"type": "static"}).json()
    assert set(full) >= {"segments", "list_id", "total_items"}
    assert set(full["segments"][0]) >= {"id", "name", "member_count", "type", "list_id"}
    cut = http.get(f"{LIST}/segments", params={"fields": "segments.id,segments.name"}).json()
    assert cut == {"segments": [{"id": full["segments"][0]["id"], "name": "VIP"}]}
