"""HTTP to Shopify's Admin GraphQL API, paced by Shopify's cost bucket.

Shopify meters GraphQL with a leaky bucket per app and shop: a query's *requested* cost is
charged before it runs and the unused part refunded after, and a query the bucket cannot pay is
answered ``THROTTLED`` without running. Every response reports the bucket
(``extensions.cost.throttleStatus``), so the client keeps an estimate of it and, before sending,
waits ``(requested - available) / restoreRate`` seconds when the next query could not be paid: a
throttled request is a wasted round trip. A throttle that happens anyway (another app on the
same shop, HTTP 200 or 429) is a wait, never a failure. 5xx answers, timeouts and dropped
connections are retried with backoff by :class:`~segsync.core.retry.RetryPolicy`; 401, 403 and
404 are fatal with a message naming the setting to fix.

The clock and ``sleep`` are injectable so tests pace against a virtual clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from segsync.core import __version__
from segsync.core.errors import FatalError, RetriableError
from segsync.core.retry import RetryPolicy

from .config import ShopifyConfig

log = logging.getLogger("segsync.shopify")

#: Shopify's cap on one query's requested cost, until a MAX_COST_EXCEEDED answer says otherwise.
DEFAULT_MAX_QUERY_COST = 1000.0
_THROTTLE_BACKOFF_CAP = 30.0

_FATAL_STATUS = {
    401: "Shopify refused the access token (HTTP 401): check access_token, an Admin API "
         "access token (shpat_…) of an app installed on {shop}",
    402: "the shop {shop} is frozen (HTTP 402 Payment Required)",
    403: "Shopify refused the request (HTTP 403): the app lacks an access scope it needs "
         "(read_customers, read_orders)",
    404: "no Admin API at {url} (HTTP 404): check shop and api_version",
    423: "the shop {shop} is locked (HTTP 423)",
}


@dataclass
class Bucket:
    """The client's estimate of Shopify's cost bucket, refreshed by every response."""

    maximum: float | None = None
    available: float = 0.0
    restore_rate: float = 0.0
    seen_at: float = 0.0

    def observe(self, status: dict[str, Any], now: float) -> None:
        self.maximum = float(status["maximumAvailable"])
        self.available = float(status["currentlyAvailable"])
        self.restore_rate = float(status["restoreRate"])
        self.seen_at = now

    def available_at(self, now: float) -> float:
        """Points available at ``now``: the last report plus what has leaked back since."""
        assert self.maximum is not None
        refilled = self.available + self.restore_rate * max(0.0, now - self.seen_at)
        return min(self.maximum, refilled)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until the bucket can pay ``cost``; 0 before any report (nothing known)."""
        if self.maximum is None or self.restore_rate <= 0:
            return 0.0
        # One point of headroom: the server's refill and ours round differently.
        needed = min(cost + 1.0, self.maximum) - self.available_at(now)
        return max(0.0, needed / self.restore_rate)


@dataclass
class Response:
    """A GraphQL answer: ``data`` (None when nothing ran) and the ``errors`` list."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def codes(self) -> set[str]:
        return {str((e.get("extensions") or {}).get("code")) for e in self.errors}

    def error(self, code: str) -> dict[str, Any] | None:
        return next((e for e in self.errors
                     if (e.get("extensions") or {}).get("code") == code), None)

    def messages(self) -> str:
        return "; ".join(str(e.get("message", e)) for e in self.errors)


class ShopifyClient:
    """One shop's GraphQL endpoint: :meth:`query` for data, :meth:`lines` for bulk files."""

    def __init__(
        self,
        config: ShopifyConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.retry = retry or RetryPolicy(attempts=config.max_retries, sleep=sleep)
        self.path = f"/admin/api/{config.api_version}/graphql.json"
        self.bucket = Bucket()
        self.max_query_cost = DEFAULT_MAX_QUERY_COST
        #: The version Shopify answered with (it falls back when asked for a retired one).
        self.served_version: str | None = None
        # Requested cost per (document, integer variables): the same query shape costs the
        # same, so the previous answer says what the next request will be charged.
        self._costs: dict[tuple[str, tuple[tuple[str, int], ...]], float] = {}
        # The token goes on GraphQL requests only, never as a client default: bulk files are
        # downloaded from a storage host that must not see it.
        self.http = httpx.Client(
            base_url=config.endpoint,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            transport=transport,
            headers={"User-Agent": f"segsync/{__version__}"},
        )

    def close(self) -> None:
        self.http.close()

    # -- GraphQL ------------------------------------------------------------------------------

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run ``document`` and return its ``data``; any GraphQL error is a FatalError."""
        response = self.request(document, variables)
        if response.errors or response.data is None:
            raise FatalError(f"Shopify answered with errors: {response.messages()}")
        return response.data

    def request(self, document: str, variables: dict[str, Any] | None = None) -> Response:
        """Send one query, waiting out the cost bucket and throttles; errors are returned.

        HTTP failures raise: FatalError (401, 403, 404, …) or RetriableError once the retry
        policy gives up on 5xx and network errors. ``MAX_COST_EXCEEDED`` comes back as an
        error so the caller can ask for smaller pages.
        """
        variables = variables or {}
        key = (document, tuple(sorted((k, v) for k, v in variables.items()
                                      if isinstance(v, int) and not isinstance(v, bool))))
        body = {"query": document, "variables": variables}
        throttled_for = 0.0
        throttles = 0
        while True:
            # A shape never sent before is assumed to cost the most a query may, so even the
            # first request of a shape is never one the bucket cannot pay.
            cost = self._costs.get(key, self.max_query_cost)
            wait = self.bucket.wait_for(cost, self.clock())
            if wait > 0:
                if throttles:
                    throttled_for += wait
                log.debug("waiting %.2fs for %.0f cost points", wait, cost)
                self.sleep(wait)
            status, payload, retry_after = self.retry.call(self._post, body)
            self._observe(payload, key)
            if status == 429 or _throttled(payload):
                throttles += 1
                # A bucket report in the answer paces the retry at the top of the loop; without
                # one (a bare 429) wait what the server asked, or a doubling pause.
                if retry_after is not None:
                    pause = retry_after
                elif self.bucket.wait_for(self._costs.get(key, cost), self.clock()) > 0:
                    pause = 0.0
                else:
                    pause = min(_THROTTLE_BACKOFF_CAP, 0.5 * 2 ** (throttles - 1))
                throttled_for += pause
                if throttled_for > self.config.throttle_patience:
                    raise RetriableError(
                        f"Shopify kept throttling one request for {throttled_for:.0f}s "
                        f"(throttle_patience is {self.config.throttle_patience:.0f}s)"
                    )
                log.info("throttled by Shopify (%s); retrying",
                         "HTTP 429" if status == 429 else "THROTTLED")
                if pause > 0:
                    self.sleep(pause)
                continue
            errors = payload.get("errors") or []
            response = Response(payload.get("data"),
                                errors if isinstance(errors, list) else [{"message": errors}])
            exceeded = response.error("MAX_COST_EXCEEDED")
            if exceeded is not None and exceeded.get("extensions", {}).get("maxCost"):
                self.max_query_cost = float(exceeded["extensions"]["maxCost"])
            return response

    def _observe(self, payload: dict[str, Any], key: Any) -> None:
        cost = (payload.get("extensions") or {}).get("cost") or {}
        if cost.get("requestedQueryCost") is not None:
            self._costs[key] = float(cost["requestedQueryCost"])
        if cost.get("throttleStatus"):
            self.bucket.observe(cost["throttleStatus"], self.clock())

    def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float | None]:
        """One HTTP round trip: (status, JSON body, Retry-After) or an error to retry or stop."""
        headers = {"X-Shopify-Access-Token": self.config.access_token.get_secret_value()}
        try:
            response = self.http.post(self.path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetriableError(f"Shopify did not answer in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise RetriableError(f"cannot reach Shopify: {exc}") from exc
        retry_after = _retry_after(response)
        if response.status_code >= 500:
            raise RetriableError(f"Shopify answered HTTP {response.status_code}", retry_after)
        if response.status_code in _FATAL_STATUS:
            raise FatalError(_FATAL_STATUS[response.status_code].format(
                shop=self.config.domain, url=f"{self.config.endpoint}{self.path}"))
        if response.status_code >= 400 and response.status_code != 429:
            raise FatalError(f"Shopify answered HTTP {response.status_code}: "
                             f"{response.text[:300]}")
        self.served_version = response.headers.get("X-Shopify-API-Version",
                                                   self.served_version)
        try:
            payload = response.json()
        except ValueError as exc:
            if response.status_code == 429:
                return 429, {}, retry_after
            # A cut-off body is a network failure in disguise.
            raise RetriableError(f"Shopify sent a body that is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise FatalError(f"Shopify sent an unexpected body: {response.text[:300]}")
        return response.status_code, payload, retry_after

    # -- bulk files ---------------------------------------------------------------------------

    @contextmanager
    def lines(self, url: str) -> Iterator[Iterator[str]]:
        """Stream a bulk operation's JSONL file line by line, never holding it whole.

        A network failure while reading is a RetriableError; the caller restarts the file.
        """
        try:
            with self.http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 500:
                    raise RetriableError(f"bulk file download answered HTTP "
                                         f"{response.status_code}", _retry_after(response))
                if response.status_code >= 400:
                    raise FatalError(f"bulk file download answered HTTP "
                                     f"{response.status_code} (the file may have expired)")
                yield _guarded(response.iter_lines())
        except httpx.TransportError as exc:
            raise RetriableError(f"bulk file download failed: {exc}") from exc


def _guarded(lines: Iterator[str]) -> Iterator[str]:
    # Errors raised while the caller iterates happen outside ``lines``' try block.
    try:
        yield from lines
    except httpx.TransportError as exc:
        raise RetriableError(f"bulk file download broke off: {exc}") from exc


def _throttled(payload: dict[str, Any]) -> bool:
    return any((e.get("extensions") or {}).get("code") == "THROTTLED"
               for e in payload.get("errors") or [] if isinstance(e, dict))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
