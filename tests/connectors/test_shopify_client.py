"""The Shopify HTTP client on its own: pacing by the cost bucket, throttles, retries, errors.

Answers are scripted with httpx's MockTransport so each test controls exactly what the client
sees; time is a virtual clock, so every wait is measured and none is spent.
"""

from __future__ import annotations

import json

import httpx
import pytest
from fakes.shopify import VirtualClock

from segsync.connectors.shopify.client import ShopifyClient
from segsync.connectors.shopify.config import ShopifyConfig
from segsync.core.errors import FatalError, RetriableError
from segsync.core.retry import RetryPolicy

QUERY = "query Q($first: Int!) { customers(first: $first) { nodes { id } } }"


def cost(requested, available, *, maximum=1000.0, rate=50.0, actual=None):
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": {"maximumAvailable": maximum,
                                        "currentlyAvailable": available, "restoreRate": rate}}}


def ok(requested, available, **kw):
    return httpx.Response(200, json={"data": {"customers": {"nodes": []}},
                                     "extensions": cost(requested, available,
                                                        actual=requested, **kw)})


def throttled(requested, available, status=200, **kw):
    return httpx.Response(status, json={
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": cost(requested, available, **kw)})


def client_for(answers, clock, **config):
    """A client whose requests get ``answers`` in turn; it records what it sent and when."""
    sent = []

    def handler(request):
        body = json.loads(request.content) if request.content else None
        sent.append((clock(), body, dict(request.headers)))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = ShopifyConfig(shop="demo", access_token="shpat_secret", **config)
    client = ShopifyClient(settings, transport=httpx.MockTransport(handler), clock=clock,
                           sleep=clock.sleep,
                           retry=RetryPolicy(attempts=4, base=1, jitter=0, sleep=clock.sleep))
    return client, sent


def test_it_waits_until_the_bucket_can_pay_the_requested_cost():
    clock = VirtualClock()
    client, sent = client_for([ok(500, 100), ok(500, 100)], clock)
    client.query(QUERY, {"first": 5})
    client.query(QUERY, {"first": 5})
    # (requested - available) / restoreRate, plus one point of headroom.
    assert clock.sleeps == [pytest.approx((500 - 100 + 1) / 50)]
    assert sent[1][0] - sent[0][0] == pytest.approx(8.02)


def test_time_already_passed_counts_towards_the_refill():
    clock = VirtualClock()
    client, _ = client_for([ok(500, 100), ok(500, 100)], clock)
    client.query(QUERY, {"first": 5})
    clock.now += 6  # 300 points leak back while the caller works
    client.query(QUERY, {"first": 5})
    assert clock.sleeps == [pytest.approx((500 - 400 + 1) / 50)]


def test_a_shape_never_sent_is_assumed_to_cost_the_query_maximum():
    clock = VirtualClock()
    client, _ = client_for([ok(10, 200), ok(10, 200)], clock)
    client.query(QUERY, {"first": 5})
    client.query(QUERY, {"first": 6})  # another page size: its cost is not known yet
    assert clock.sleeps == [pytest.approx((1000 - 200) / 50)]


@pytest.mark.parametrize("status", [200, 429])
def test_a_throttle_is_a_wait_paced_by_the_reported_bucket(status):
    clock = VirtualClock()
    client, sent = client_for([throttled(300, 40, status), ok(300, 0)], clock)
    data = client.query(QUERY, {"first": 5})
    assert data == {"customers": {"nodes": []}}
    assert len(sent) == 2
    assert clock.sleeps == [pytest.approx((300 + 1 - 40) / 50)]


def test_a_bare_429_waits_what_retry_after_says():
    clock = VirtualClock()
    bare = httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "7"})
    client, _ = client_for([bare, ok(10, 900)], clock)
    client.query(QUERY, {"first": 5})
    assert clock.sleeps == [7.0]


def test_a_throttle_storm_slows_but_does_not_fail():
    clock = VirtualClock()
    answers = [throttled(300, 0, status) for status in [200, 429] * 15] + [ok(300, 0)]
    client, sent = client_for(answers, clock)
    assert client.query(QUERY, {"first": 5}) == {"customers": {"nodes": []}}
    assert len(sent) == 31
    assert sum(clock.sleeps) == pytest.approx(30 * 301 / 50)


def test_throttle_patience_is_a_safety_valve_for_a_server_that_never_relents():
    clock = VirtualClock()
    client, _ = client_for([throttled(300, 0) for _ in range(50)], clock, throttle_patience=60)
    with pytest.raises(RetriableError, match="kept throttling"):
        client.query(QUERY, {"first": 5})
    assert 60 < sum(clock.sleeps) < 60 + 301 / 50 + 0.01


def test_server_errors_and_dropped_connections_are_retried_with_backoff():
    clock = VirtualClock()
    answers = [httpx.Response(502), httpx.RemoteProtocolError("peer closed"),
               httpx.ReadTimeout("slow"), ok(10, 900)]
    client, sent = client_for(answers, clock)
    assert client.query(QUERY, {"first": 5}) == {"customers": {"nodes": []}}
    assert len(sent) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_retries_run_out_with_a_retriable_error():
    clock = VirtualClock()
    client, sent = client_for([httpx.Response(503) for _ in range(4)], clock)
    with pytest.raises(RetriableError, match="503"):
        client.query(QUERY, {"first": 5})
    assert len(sent) == 4


@pytest.mark.parametrize(("status", "words"), [
    (401, "access_token"), (403, "scope"), (404, "api_version"), (402, "frozen")])
def test_client_errors_are_fatal_and_say_what_to_fix(status, words):
    clock = VirtualClock()
    client, sent = client_for([httpx.Response(status, json={"errors": "nope"})], clock)
    with pytest.raises(FatalError, match=words):
        client.query(QUERY, {"first": 5})
    assert len(sent) == 1


def test_the_token_goes_only_to_the_graphql_endpoint():
    clock = VirtualClock()
    answers = [ok(10, 900), httpx.Response(200, text='{"id": "gid://shopify/Customer/1"}\n')]
    client, sent = client_for(answers, clock)
    client.query(QUERY, {"first": 5})
    with client.lines("https://storage.example.com/bulk.jsonl") as lines:
        assert list(lines) == ['{"id": "gid://shopify/Customer/1"}']
    assert sent[0][2]["x-shopify-access-token"] == "shpat_secret"
    assert "x-shopify-access-token" not in sent[1][2]


def test_graphql_errors_with_data_missing_are_fatal():
    clock = VirtualClock()
    body = {"errors": [{"message": "Field 'x' doesn't exist on type 'Customer'",
                        "extensions": {"code": "undefinedField"}}]}
    client, _ = client_for([httpx.Response(200, json=body)], clock)
    with pytest.raises(FatalError, match="doesn't exist"):
        client.query(QUERY, {"first": 5})
