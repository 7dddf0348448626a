"""The Shopify fake is only worth testing against if it is as strict as Shopify: these tests pin
the behaviours the connector's tests rely on (selection, versions, limits, cost, bulk files)."""

from __future__ import annotations

import json

import httpx
import pytest
from fakes.shopify import TOKEN, ShopifyFake, VirtualClock, make_shop


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def fake(clock):
    with ShopifyFake(make_shop(40, 120, seed=3), clock=clock) as server:
        yield server


# One client for the module: building one per request costs more than the request.
_http = httpx.Client(timeout=30)


def post(fake, query, variables=None, *, version="2025-07", token=TOKEN):
    headers = {"X-Shopify-Access-Token": token} if token else {}
    return _http.post(f"{fake.url}/admin/api/{version}/graphql.json", headers=headers,
                      json={"query": query, "variables": variables or {}})


def test_only_selected_fields_come_back_with_shopify_serialisation(fake):
    body = post(fake, "{ customers(first: 2) { nodes { id numberOfOrders amountSpent { amount } }"
                      " } }").json()
    nodes = body["data"]["customers"]["nodes"]
    assert set(nodes[0]) == {"id", "numberOfOrders", "amountSpent"}
    assert set(nodes[0]["amountSpent"]) == {"amount"}
    assert nodes[0]["id"].startswith("gid://shopify/Customer/")
    assert isinstance(nodes[0]["numberOfOrders"], str)
    assert isinstance(nodes[0]["amountSpent"]["amount"], str)


def test_an_unknown_field_is_an_error_without_data(fake):
    body = post(fake, "{ customers(first: 2) { nodes { id emailAddress } } }").json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    assert "emailAddress" in body["errors"][0]["message"]


@pytest.mark.parametrize(("version", "exists"), [("2025-01", False), ("2025-04", True)])
def test_contact_objects_exist_from_2025_04(fake, version, exists):
    body = post(fake, "{ customers(first: 1) { nodes { defaultEmailAddress { emailAddress } } } }",
                version=version).json()
    assert ("errors" not in body) is exists


def test_group_objects_is_an_argument_from_2025_07(fake):
    query = ('mutation { bulkOperationRunQuery(query: "{ customers { edges { node { id } } } }",'
             " groupObjects: false) { bulkOperation { id } userErrors { message } } }")
    assert post(fake, query, version="2025-04").json()["errors"][0]["extensions"]["code"] == \
        "argumentNotAccepted"
    assert post(fake, query, version="2025-07").json()["data"]["bulkOperationRunQuery"][
        "bulkOperation"]["id"]


def test_page_size_is_capped_at_250(fake):
    body = post(fake, "{ customers(first: 251) { nodes { id } } }").json()
    assert "250" in body["errors"][0]["message"]
    assert "errors" not in post(fake, "{ customers(first: 250) { nodes { id } } }").json()


@pytest.mark.parametrize("token", [None, "shpat_wrong"])
def test_a_missing_or_wrong_token_is_401(fake, token):
    assert post(fake, "{ shop { name } }", token=token).status_code == 401


def test_pagination_walks_every_record_once_in_updated_at_order(fake):
    query = ("query($after: String) { customers(first: 7, after: $after, sortKey: UPDATED_AT) "
             "{ nodes { id updatedAt } pageInfo { hasNextPage endCursor } } }")
    seen, after = [], None
    while True:
        page = post(fake, query, {"after": after}).json()["data"]["customers"]
        seen += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len({n["id"] for n in seen}) == len(seen) == len(fake.shop.customers)
    assert [n["updatedAt"] for n in seen] == sorted(n["updatedAt"] for n in seen)


def test_the_search_filter_selects_a_half_open_updated_at_window(fake):
    stamps = sorted(c["updatedAt"] for c in fake.shop.customers)
    low, high = stamps[5], stamps[20]
    query = ("query($q: String) { customers(first: 250, query: $q, sortKey: UPDATED_AT) "
             "{ nodes { updatedAt } } }")
    got = post(fake, query, {"q": f"updated_at:>='{low}' AND updated_at:<'{high}'"}).json()
    assert sorted(n["updatedAt"] for n in got["data"]["customers"]["nodes"]) == \
        [s for s in stamps if low <= s < high]
    unquoted = post(fake, query, {"q": f"updated_at:>={low}"}).json()
    assert "must be quoted" in unquoted["errors"][0]["message"]


def test_cost_is_charged_up_front_and_refunded_to_the_actual_cost(fake):
    body = post(fake, "{ customers(first: 100) { nodes { id defaultAddress { city } } } }").json()
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 100 * 2
    # Forty customers, some without an address: fewer objects than requested.
    assert cost["actualQueryCost"] < cost["requestedQueryCost"]
    assert cost["throttleStatus"]["currentlyAvailable"] == 2000 - cost["actualQueryCost"]


def test_a_query_the_bucket_cannot_pay_is_throttled_and_logged(fake, clock):
    fake.maximum, fake.restore_rate = 300.0, 10.0
    query = "{ customers(first: 140) { nodes { id defaultAddress { city } } } }"  # 282
    assert "data" in post(fake, query).json()
    throttled = post(fake, query).json()
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert throttled["extensions"]["cost"]["actualQueryCost"] is None
    assert [e.payable for e in fake.log] == [True, False]
    clock.sleep(20)  # 200 points leak back in: the bucket is full again
    assert "data" in post(fake, query).json()


def test_a_query_costing_more_than_the_single_query_limit_is_refused(fake):
    body = post(fake, "{ orders(first: 250) { nodes { id lineItems(first: 50) { nodes { id } } } }"
                      " }").json()
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["errors"][0]["extensions"]["maxCost"] == 1000


def test_a_bulk_file_has_children_after_their_parents_but_scattered(fake):
    query = ('mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id name '
             'lineItems { edges { node { id title } } } } } } }", groupObjects: false) '
             "{ bulkOperation { id } userErrors { message } } }")
    op = post(fake, query).json()["data"]["bulkOperationRunQuery"]["bulkOperation"]
    second = post(fake, query).json()["data"]["bulkOperationRunQuery"]
    assert second["userErrors"][0]["message"].startswith("A bulk query operation")
    status = post(fake, "query($id: ID!) { node(id: $id) { ... on BulkOperation { status url "
                        "objectCount } } }", {"id": op["id"]}).json()["data"]["node"]
    assert status["status"] == "COMPLETED"
    assert _http.get(status["url"], headers={"X-Shopify-Access-Token": TOKEN}).status_code == 400
    lines = [json.loads(x) for x in _http.get(status["url"]).text.splitlines()]
    assert int(status["objectCount"]) == len(lines)
    position = {line["id"]: i for i, line in enumerate(lines)}
    children = [(i, line) for i, line in enumerate(lines) if "__parentId" in line]
    assert len(children) == sum(len(o["lineItems"]) for o in fake.shop.orders)
    assert all(position[line["__parentId"]] < i for i, line in children)
    # Not contiguous: some child is separated from its parent by another order.
    separated = [i for i, line in children
                 if any("__parentId" not in lines[j] for j in range(position[line["__parentId"]]
                                                                   + 1, i))]
    assert len(separated) > len(children) // 4
    assert "lineItems" not in lines[0] and "title" in children[0][1]


def test_faults_fire_at_their_request_number(fake):
    from fakes.shopify import Fault

    fake.faults = [Fault(at=2, status=502), Fault(at=3, kind="drop")]
    assert post(fake, "{ shop { name } }").status_code == 200
    assert post(fake, "{ shop { name } }").status_code == 502
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake, "{ shop { name } }")
    assert post(fake, "{ shop { name } }").status_code == 200
