"""The ``shopify`` source: customers, orders and abandoned checkouts into canonical records.

Each stream is pulled incrementally over a half-open ``updated_at`` window
``[cursor - overlap, now)``. Paged pulls sort by ``updated_at`` and yield the stream's cursor
(the latest ``updatedAt`` read) after every page, so a killed pull resumes where its last page
was stored. The first pull of a stream, and any pull of at least ``bulk_threshold`` records,
runs as a bulk operation instead; the operation's id is stored as cursor ``bulk:<stream>``
before waiting on it, so a killed pull resumes the same operation rather than starting another.
Records are keyed by Shopify GID, so re-reading a record (the overlap, a resumed operation)
only upserts it again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from segsync.core.connector import PullState, Source
from segsync.core.errors import FatalError, SourceError
from segsync.core.records import (
    Consent,
    Cursor,
    Customer,
    Order,
    OrderLine,
    Record,
    Rejected,
)
from segsync.core.retry import RetryPolicy

from . import queries
from .bulk import ACTIVE, Bulk, BulkJob
from .client import ShopifyClient
from .config import ShopifyConfig
from .queries import Window

log = logging.getLogger("segsync.shopify")

#: Shopify marketing states (email and SMS) → canonical consent. ``INVALID`` is an address
#: that bounced or cannot receive mail, which the canonical states call ``cleaned``.
CONSENT: dict[str, Consent] = {
    "SUBSCRIBED": "subscribed",
    "NOT_SUBSCRIBED": "not_subscribed",
    "PENDING": "pending",
    "UNSUBSCRIBED": "unsubscribed",
    "REDACTED": "redacted",
    "INVALID": "cleaned",
}
REQUIRED_SCOPES = ("read_customers", "read_orders")
# Lines per follow-up request for an order with more lines than its page carried.
_LINES_PAGE = 100
# Bulk children gathered under orders, by GID type.
_ORDER_CHILDREN = {"LineItem": "lineItems"}
_CHECKOUTS_SKIPPED = ("abandoned checkouts skipped: the token may not read them (grant the "
                      "read_checkouts scope, or set checkouts = false)")


class ShopifySource(Source):
    """Customers, orders and abandoned checkouts from a shop's Admin GraphQL API."""

    type_name = "shopify"
    Config = ShopifyConfig
    streams = ("customers", "orders", "checkouts")

    def __init__(
        self,
        name: str,
        config: ShopifyConfig,
        base_dir: Path,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] | None = None,
        retry: RetryPolicy | None = None,
    ):
        super().__init__(name, config, base_dir)
        self.config: ShopifyConfig = config
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._retry = retry
        self._client: ShopifyClient | None = None
        #: What the last pull skipped and why (abandoned checkouts without access).
        self.notes: list[str] = []

    @property
    def client(self) -> ShopifyClient:
        if self._client is None:
            self._client = ShopifyClient(self.config, transport=self._transport,
                                         clock=self._clock, sleep=self._sleep,
                                         retry=self._retry)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- check --------------------------------------------------------------------------------

    def check(self) -> list[str]:
        scopes, shop = self._access()
        notes = [f"shop {shop.get('myshopifyDomain')} ({shop.get('name')}), "
                 f"API {self.config.api_version}"]
        served = self.client.served_version
        if served and served != self.config.api_version:
            notes.append(f"Shopify answered with API {served}: {self.config.api_version} is "
                         "not served (retired or not yet released)")
        if "read_all_orders" not in scopes:
            notes.append("no read_all_orders scope: Shopify shows only the last 60 days of "
                         "orders; grant it to pull older history")
        if self.config.checkouts and not self._checkouts_readable():
            notes.append(_CHECKOUTS_SKIPPED)
        return notes

    def _access(self) -> tuple[set[str], dict[str, Any]]:
        """The token's scopes (a write scope implies its read scope) and the shop; FatalError
        when a required scope is missing."""
        data = self.client.query(queries.ACCESS)
        handles = {s["handle"] for s in data["currentAppInstallation"]["accessScopes"]}
        # Shopify lists write_orders alone when an app has both; it includes read_orders.
        scopes = handles | {"read_" + h.removeprefix("write_") for h in handles
                            if h.startswith("write_")}
        missing = [s for s in REQUIRED_SCOPES if s not in scopes]
        if missing:
            raise FatalError(f"the access token of {self.config.domain} lacks the "
                             f"{', '.join(missing)} scope(s); add them to the app's Admin API "
                             "scopes and reinstall it")
        return scopes, data["shop"]

    def _checkouts_readable(self) -> bool:
        response = self.client.request(queries.CHECKOUTS_PROBE)
        if "ACCESS_DENIED" in response.codes():
            return False
        if response.errors:
            raise FatalError(f"Shopify answered with errors: {response.messages()}")
        return True

    # -- pull ---------------------------------------------------------------------------------

    def pull(self, state: PullState) -> Iterator[Record]:
        self.notes = []
        scopes, _shop = self._access()
        if "read_all_orders" not in scopes:
            log.warning("%s: no read_all_orders scope; only the last 60 days of orders are "
                        "visible", self.name)
        until = _iso(self._now())
        yield from self._stream("customers", state, until)
        yield from self._stream("orders", state, until)
        if self.config.checkouts:
            if self._checkouts_readable():
                yield from self._checkouts(state, until, zoneinfo.ZoneInfo(state.timezone))
            else:
                log.warning("%s: %s", self.name, _CHECKOUTS_SKIPPED)
                self.notes.append(_CHECKOUTS_SKIPPED)

    def _bulk(self) -> Bulk:
        return Bulk(self.client, poll_interval=self.config.bulk_poll_interval,
                    timeout=self.config.bulk_timeout, clock=self._clock, sleep=self._sleep)

    def _stream(self, stream: str, state: PullState, until: str) -> Iterator[Record]:
        """One stream: finish a stored bulk operation if any, then pull the window up to now."""
        since = None if state.full_refresh else state.cursors.get(stream)
        pending = None if state.full_refresh else state.cursors.get(f"bulk:{stream}")
        if pending:
            since = yield from self._resume(stream, json.loads(pending), since)
        window = Window(_minus(since, self.config.overlap_seconds) if since else None, until)
        if self._use_bulk(stream, window):
            search = window.search()
            query = (queries.bulk_customers(self.config.api_version, search)
                     if stream == "customers" else queries.bulk_orders(search))
            job = self._bulk().start(query)
            log.info("%s: %s pulled by bulk operation %s", self.name, stream, job.id)
            # Stored before the wait: a pull killed from here on resumes this operation.
            yield Cursor(f"bulk:{stream}", json.dumps({"id": job.id, "until": until}))
            yield from self._consume(stream, job, since, until)
        else:
            yield from self._pages(stream, window, since)

    def _resume(self, stream: str, pending: dict[str, Any],
                since: str | None) -> Iterator[Record]:
        """Finish the bulk operation a killed pull left behind; return the stream's cursor."""
        bulk = self._bulk()
        job = bulk.fetch(pending["id"])
        if job is None or (job.status not in ACTIVE and job.status != "COMPLETED"):
            log.info("%s: stored bulk operation %s is %s; not resuming it", self.name,
                     pending["id"], job.status.lower() if job else "gone")
            yield Cursor(f"bulk:{stream}", "")
            return since
        log.info("%s: resuming bulk operation %s (%s)", self.name, job.id, job.status.lower())
        try:
            return (yield from self._consume(stream, job, since, pending["until"]))
        except FatalError as exc:
            # Result files expire after a week; read the window again instead. (The file is
            # read whole before any record is yielded, so nothing was half emitted; any other
            # fatal cause fails again, properly, on the next request.)
            log.warning("%s: bulk operation %s cannot be read (%s); pulling again",
                        self.name, job.id, exc)
            yield Cursor(f"bulk:{stream}", "")
            return since

    def _consume(self, stream: str, job: BulkJob, since: str | None,
                 until: str) -> Iterator[Record]:
        job = self._bulk().wait(job)
        if job.status != "COMPLETED":
            raise SourceError(f"bulk operation {job.id} for {stream} ended {job.status} "
                              f"({job.error_code or 'no error code'}); the next pull starts "
                              "a new one")
        high = since
        children = _ORDER_CHILDREN if stream == "orders" else {}
        # The file is in no particular updated_at order, so the cursor moves only at the end.
        for node in self._bulk().nodes(job.url, children):
            yield from self._records(stream, node)
            high = _later(high, node.get("updatedAt"))
        high = high or until
        yield Cursor(stream, high)
        yield Cursor(f"bulk:{stream}", "")
        return high

    def _use_bulk(self, stream: str, window: Window) -> bool:
        if self.config.bulk != "auto":
            return self.config.bulk == "always"
        if window.since is None:
            return True  # a first pull reads the whole history: what bulk operations are for
        root = f"{stream}Count"
        count = int(self.client.query(queries.COUNTS[stream],
                                      {"query": window.search()})[root]["count"])
        return count >= self.config.bulk_threshold

    def _pages(self, stream: str, window: Window, since: str | None) -> Iterator[Record]:
        if stream == "customers":
            document = queries.paged_customers(self.config.api_version)
            variables: dict[str, Any] = {}
        else:
            document = queries.PAGED_ORDERS
            variables = {"lines": self.config.line_items_per_order}
        variables.update(first=self.config.page_size, query=window.search())
        high = since
        for connection in self._connection(document, variables, (stream,)):
            for node in connection["nodes"]:
                if stream == "orders":
                    # Completed before the order is yielded: an order is never stored with
                    # only some of its lines.
                    node["lineItems"] = self._all_lines(node)
                yield from self._records(stream, node)
                high = _later(high, node.get("updatedAt"))
            # Pages come in updated_at order, so everything before ``high`` has been read.
            if high:
                yield Cursor(stream, high)
        if high is None:
            yield Cursor(stream, window.until)

    def _connection(self, document: str, variables: dict[str, Any],
                    path: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """Every page of the connection at ``path`` in ``document``'s data.

        A page Shopify says would cost more than one query may (``MAX_COST_EXCEEDED``) is asked
        again with a page size scaled to fit; the smaller size sticks for the rest of the
        connection.
        """
        variables = {"after": None, **variables}
        while True:
            response = self.client.request(document, variables)
            exceeded = response.error("MAX_COST_EXCEEDED")
            if exceeded is not None and variables["first"] > 1:
                # A page costs about first × (cost per node), so scale by what Shopify reported.
                cost = float((exceeded.get("extensions") or {}).get("cost") or 0)
                limit = self.client.max_query_cost
                first = variables["first"]
                smaller = int(first * limit / cost) if cost > limit else first // 2
                variables["first"] = max(1, min(first - 1, smaller))
                log.info("%s: page of %d costs %.0f > %.0f; asking for %d", self.name, first,
                         cost, limit, variables["first"])
                continue
            if response.errors or response.data is None:
                raise FatalError(f"Shopify answered with errors: {response.messages()}")
            connection: Any = response.data
            for key in path:
                connection = connection[key]
            yield connection
            if not connection["pageInfo"]["hasNextPage"]:
                return
            variables["after"] = connection["pageInfo"]["endCursor"]

    def _all_lines(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """An order's line items: those its page carried plus, when there are more, the rest."""
        carried = order["lineItems"]
        lines = list(carried["nodes"])
        if carried["pageInfo"]["hasNextPage"]:
            # The follow-up starts after the last line the order page carried.
            variables = {"id": order["id"], "first": _LINES_PAGE,
                         "after": carried["pageInfo"]["endCursor"]}
            for page in self._connection(queries.ORDER_LINES, variables, ("order", "lineItems")):
                lines.extend(page["nodes"])
        return lines

    def _checkouts(self, state: PullState, until: str,
                   tz: zoneinfo.ZoneInfo) -> Iterator[Record]:
        since = None if state.full_refresh else state.cursors.get("checkouts")
        window = Window(_minus(since, self.config.overlap_seconds) if since else None, until)
        high = since
        variables = {"first": self.config.page_size, "query": window.search()}
        for connection in self._connection(queries.PAGED_CHECKOUTS, variables,
                                           ("abandonedCheckouts",)):
            for node in connection["nodes"]:
                record = checkout_record(node, tz)
                if record is not None:
                    yield record
                high = _later(high, node.get("updatedAt"))
        # Checkouts come in id order, not updated_at order: the cursor moves once, at the end.
        yield Cursor("checkouts", high or until)

    def _records(self, stream: str, node: dict[str, Any]) -> Iterator[Record]:
        try:
            record: Record = (customer_record(node) if stream == "customers"
                              else order_record(node))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            record = Rejected(stream, str(node.get("id", "?")),
                              f"unreadable {stream[:-1]}: {type(exc).__name__}: {exc}", raw=node)
        yield record


# -- mapping ----------------------------------------------------------------------------------


def customer_record(node: dict[str, Any]) -> Customer:
    """A Shopify customer as a canonical record, keyed by GID and linked by numeric id.

    From 2025-04 contact details and their consent live on ``defaultEmailAddress`` /
    ``defaultPhoneNumber``; older versions have the flat fields, which the query selects
    instead (see :func:`~segsync.connectors.shopify.queries.customer_fields`).
    """
    if "defaultEmailAddress" in node or "defaultPhoneNumber" in node:
        mail = node.get("defaultEmailAddress") or {}
        phone = node.get("defaultPhoneNumber") or {}
        email, email_state, email_at = (mail.get("emailAddress"), mail.get("marketingState"),
                                        mail.get("marketingUpdatedAt"))
        number, sms_state, sms_at = (phone.get("phoneNumber"), phone.get("marketingState"),
                                     phone.get("marketingUpdatedAt"))
    else:
        mail = node.get("emailMarketingConsent") or {}
        phone = node.get("smsMarketingConsent") or {}
        email, email_state, email_at = (node.get("email"), mail.get("marketingState"),
                                        mail.get("consentUpdatedAt"))
        number, sms_state, sms_at = (node.get("phone"), phone.get("marketingState"),
                                     phone.get("consentUpdatedAt"))
    address = node.get("defaultAddress") or {}
    email_consent = CONSENT.get(email_state or "")
    sms_consent = CONSENT.get(sms_state or "")
    return Customer(
        key=node["id"],
        link_id=f"shopify:{numeric_id(node['id'])}",
        email=email,
        phone=number,
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        city=address.get("city"),
        region=address.get("provinceCode"),
        country=address.get("countryCodeV2"),
        postal_code=address.get("zip"),
        tags=list(node.get("tags") or []),
        email_consent=email_consent,
        email_consent_at=_parse(email_at) if email_consent else None,
        sms_consent=sms_consent,
        sms_consent_at=_parse(sms_at) if sms_consent else None,
        created_at=_parse(node.get("createdAt")),
        updated_at=_parse(node["updatedAt"]),
        origin=node["id"],
        raw=node,
    )


def order_record(node: dict[str, Any]) -> Order:
    """A Shopify order as a canonical record, dated by ``processedAt`` (the business date,
    earlier than ``createdAt`` for imported orders). A guest order (no customer) carries its
    own email and phone, which the store turns into a guest customer."""
    # Both paths deliver line items in server order; sorting by id makes the stored record
    # (and its hash) identical whichever path read it.
    node["lineItems"] = sorted(node.get("lineItems") or [], key=lambda n: _id_order(n["id"]))
    total = node["totalPriceSet"]["shopMoney"]
    refunded = node.get("totalRefundedSet")
    customer = node.get("customer")
    location = node.get("retailLocation")
    refund_dates = [_iso(_require(_parse(r["createdAt"]), "refund date"))
                    for r in node.get("refunds") or []]
    status = node.get("displayFinancialStatus")
    return Order(
        key=node["id"],
        name=node.get("name"),
        ordered_at=_require(_parse(node.get("processedAt") or node.get("createdAt")), "date"),
        total=float(total["amount"]),
        currency=total.get("currencyCode"),
        refunded=float(refunded["shopMoney"]["amount"]) if refunded else 0.0,
        customer_key=customer["id"] if customer else None,
        email=node.get("email"),
        phone=node.get("phone"),
        cancelled_at=_parse(node.get("cancelledAt")),
        test=bool(node.get("test")),
        financial_status=status.lower() if status else None,
        location=location.get("name") if location else None,
        channel=node.get("sourceName"),
        updated_at=_parse(node["updatedAt"]),
        lines=[line_record(line) for line in node["lineItems"]],
        attributes={"refunded_at": max(refund_dates)} if refund_dates else {},
        origin=node["id"],
        raw=node,
    )


def line_record(node: dict[str, Any]) -> OrderLine:
    """One line item. A deleted product (``product: null``) leaves the line's own title, SKU
    and vendor, which Shopify keeps on the line; only category and product tags are lost."""
    product = node.get("product") or {}
    return OrderLine(
        key=node["id"],
        title=node.get("title"),
        sku=node.get("sku") or None,
        vendor=node.get("vendor") or None,
        category=product.get("productType") or None,
        product_tags=list(product.get("tags") or []),
        quantity=float(node["quantity"]),
        price=_money(node.get("originalUnitPriceSet")),
        amount=_money(node.get("discountedTotalSet")),
    )


def checkout_record(node: dict[str, Any], tz: zoneinfo.ZoneInfo) -> Customer | None:
    """An abandoned checkout as attributes of the customer who left it.

    The record carries no contact details of its own: ``link_id`` joins it to the customer's
    record, and the person's ``attributes.abandoned_checkout_date`` (the newest one wins) is
    what segments such as Shopify's abandoned-checkout template query. Completed (recovered)
    checkouts and checkouts without a customer are skipped.
    """
    customer = node.get("customer")
    if node.get("completedAt") or not customer:
        return None
    numeric = numeric_id(customer["id"])
    created = _require(_parse(node["createdAt"]), "createdAt")
    return Customer(
        key=f"checkout:{numeric}",
        link_id=f"shopify:{numeric}",
        attributes={
            "abandoned_checkout_date": created.astimezone(tz).date().isoformat(),
            "abandoned_checkout_url": node.get("abandonedCheckoutUrl"),
        },
        updated_at=_parse(node["updatedAt"]),
        origin=node["id"],
        raw=node,
    )


# -- small helpers ----------------------------------------------------------------------------


def numeric_id(gid: str) -> str:
    """``gid://shopify/Customer/207119551`` → ``207119551`` (the id CSV exports show)."""
    return gid.rsplit("/", 1)[-1].split("?", 1)[0]


def _id_order(gid: str) -> tuple[int, str]:
    numeric = numeric_id(gid)
    return (int(numeric), "") if numeric.isdigit() else (0, numeric)


def _money(value: dict[str, Any] | None) -> float | None:
    return float(value["shopMoney"]["amount"]) if value else None


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _require(value: dt.datetime | None, what: str) -> dt.datetime:
    if value is None:
        raise ValueError(f"no {what}")
    return value


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _later(high: str | None, value: str | None) -> str | None:
    """The later of a cursor and an ``updatedAt``, as a cursor (UTC, whole seconds)."""
    if not value:
        return high
    stamp = _iso(dt.datetime.fromisoformat(value))
    return stamp if high is None or stamp > high else high


def _minus(cursor: str, seconds: float) -> str:
    return _iso(dt.datetime.fromisoformat(cursor) - dt.timedelta(seconds=seconds))
