"""A strict fake of Shopify's Admin GraphQL API, served on 127.0.0.1 for end-to-end tests.

What it models, and how strictly:

* ``POST /admin/api/<YYYY-MM>/graphql.json`` with ``X-Shopify-Access-Token`` (401 without the
  right one). Documents are parsed with graphql-core and executed against a small schema of the
  types segsync reads; the answer holds **only the fields the query selects**, and a field,
  argument or selection the schema lacks is a GraphQL error, as on Shopify. Fields that arrived
  in a later API version (``defaultEmailAddress``, ``groupObjects``) exist only from it.
* Relay pagination (``first`` ≤ 250, ``after``), ``sortKey`` and the ``query:`` search filter's
  ``updated_at``/``created_at`` comparisons (quoted values), ``customersCount``/``ordersCount``.
* Shopify's serialisation: GIDs in ``id``, money amounts and ``numberOfOrders`` as strings,
  ``refunds`` as a plain list, guest orders with ``customer: null``, deleted products as
  ``product: null``.
* The cost bucket: per token, requested cost computed from the document (objects 1, scalars 0,
  connections ``2 + first × node``) charged up front and refunded down to the actual cost,
  refilled at ``restore_rate`` on an injectable clock; a query the bucket cannot pay gets the
  THROTTLED payload. Every request is logged with whether the bucket could pay it.
* Bulk operations: ``bulkOperationRunQuery`` (one at a time per token), ``currentBulkOperation``
  and ``node(id:)``; the result is a JSONL file served by the same server in which children
  come after their parent but **not contiguously** (unless ``groupObjects: true``).
* Faults: scripted statuses, dropped connections and bucket drains at the Nth request (before
  or after the request took effect), an outage from the Nth request on, a download cut short.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import json
import math
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.server import QuietHandler, Served
from graphql import GraphQLSyntaxError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.pyutils import Undefined
from graphql.utilities import value_from_ast_untyped

TOKEN = "shpat_fake_token"
ALL_SCOPES = frozenset({"read_customers", "read_orders", "read_all_orders", "read_checkouts"})
MAX_PAGE = 250


def at_least(version: str, floor: str) -> bool:
    return version == "unstable" or version >= floor


# -- schema -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """A field: its type (None for a scalar), shape, accepted arguments and first version."""

    type: str | None = None
    shape: str = "one"  # "one", "list" or "conn"
    #: argument name → the version that introduced it (None: always there)
    args: tuple[tuple[str, str | None], ...] = ()
    required: tuple[str, ...] = ()
    since: str | None = None


S = F()
_CONN_ARGS = tuple((a, None) for a in ("first", "after", "last", "before", "query", "sortKey",
                                        "reverse"))


def obj(type_name: str, since: str | None = None) -> F:
    return F(type_name, since=since)


def conn(type_name: str) -> F:
    return F(type_name, "conn", _CONN_ARGS)


MONEY_BAG = obj("MoneyBag")
SCHEMA: dict[str, dict[str, F]] = {
    "QueryRoot": {
        "customers": conn("Customer"),
        "orders": conn("Order"),
        "abandonedCheckouts": conn("AbandonedCheckout"),
        "customersCount": F("Count", args=(("query", None), ("limit", None))),
        "ordersCount": F("Count", args=(("query", None), ("limit", None))),
        "order": F("Order", args=(("id", None),), required=("id",)),
        "customer": F("Customer", args=(("id", None),), required=("id",)),
        "node": F("Node", args=(("id", None),), required=("id",)),
        "currentBulkOperation": F("BulkOperation", args=(("type", None),)),
        "currentAppInstallation": obj("AppInstallation"),
        "shop": obj("Shop"),
    },
    "Mutation": {
        "bulkOperationRunQuery": F("BulkOperationRunQueryPayload",
                                   args=(("query", None), ("groupObjects", "2025-07")),
                                   required=("query",)),
    },
    "Customer": {
        **{n: S for n in ("id", "legacyResourceId", "firstName", "lastName", "displayName",
                          "email", "phone", "createdAt", "updatedAt", "tags", "numberOfOrders",
                          "state", "verifiedEmail", "note")},
        "amountSpent": obj("MoneyV2"),
        "defaultAddress": obj("MailingAddress"),
        "emailMarketingConsent": obj("CustomerEmailMarketingConsentState"),
        "smsMarketingConsent": obj("CustomerSmsMarketingConsentState"),
        "defaultEmailAddress": obj("CustomerEmailAddress", since="2025-04"),
        "defaultPhoneNumber": obj("CustomerPhoneNumber", since="2025-04"),
    },
    "MailingAddress": {n: S for n in ("address1", "address2", "city", "province", "provinceCode",
                                      "country", "countryCodeV2", "zip", "phone", "company",
                                      "firstName", "lastName", "name")},
    "CustomerEmailMarketingConsentState": {
        n: S for n in ("marketingState", "marketingOptInLevel", "consentUpdatedAt")},
    "CustomerSmsMarketingConsentState": {
        n: S for n in ("marketingState", "marketingOptInLevel", "consentUpdatedAt",
                       "consentCollectedFrom")},
    "CustomerEmailAddress": {n: S for n in ("emailAddress", "marketingState",
                                            "marketingOptInLevel", "marketingUpdatedAt",
                                            "validFormat")},
    "CustomerPhoneNumber": {n: S for n in ("phoneNumber", "marketingState",
                                           "marketingOptInLevel", "marketingUpdatedAt",
                                           "marketingCollectedFrom")},
    "MoneyV2": {"amount": S, "currencyCode": S},
    "MoneyBag": {"shopMoney": obj("MoneyV2"), "presentmentMoney": obj("MoneyV2")},
    "Order": {
        **{n: S for n in ("id", "legacyResourceId", "name", "email", "phone", "createdAt",
                          "processedAt", "updatedAt", "cancelledAt", "cancelReason", "closedAt",
                          "currencyCode", "test", "sourceName", "tags", "displayFinancialStatus",
                          "displayFulfillmentStatus")},
        "totalPriceSet": MONEY_BAG,
        "subtotalPriceSet": MONEY_BAG,
        "totalRefundedSet": MONEY_BAG,
        "currentTotalPriceSet": MONEY_BAG,
        "customer": obj("Customer"),
        "retailLocation": obj("Location"),
        "refunds": F("Refund", "list", (("first", None),)),
        "lineItems": conn("LineItem"),
    },
    "Refund": {"id": S, "createdAt": S, "updatedAt": S, "note": S,
               "totalRefundedSet": MONEY_BAG},
    "LineItem": {
        **{n: S for n in ("id", "title", "name", "quantity", "currentQuantity", "sku",
                          "vendor")},
        "variant": obj("ProductVariant"),
        "product": obj("Product"),
        "originalUnitPriceSet": MONEY_BAG,
        "discountedTotalSet": MONEY_BAG,
        "originalTotalSet": MONEY_BAG,
    },
    "ProductVariant": {"id": S, "sku": S, "title": S},
    "Product": {"id": S, "title": S, "productType": S, "vendor": S, "tags": S},
    "Location": {"id": S, "name": S},
    "AbandonedCheckout": {
        **{n: S for n in ("id", "name", "createdAt", "updatedAt", "completedAt",
                          "abandonedCheckoutUrl", "note")},
        "customer": obj("Customer"),
        "totalPriceSet": MONEY_BAG,
    },
    "Count": {"count": S, "precision": S},
    "Shop": {n: S for n in ("id", "name", "myshopifyDomain", "currencyCode", "ianaTimezone",
                            "email")},
    "AppInstallation": {"id": S, "accessScopes": F("AccessScope", "list")},
    "AccessScope": {"handle": S, "description": S},
    "BulkOperation": {n: S for n in ("id", "status", "errorCode", "createdAt", "completedAt",
                                     "objectCount", "rootObjectCount", "fileSize", "url",
                                     "partialDataUrl", "query", "type")},
    "BulkOperationRunQueryPayload": {"bulkOperation": obj("BulkOperation"),
                                     "userErrors": F("BulkOperationUserError", "list")},
    "BulkOperationUserError": {"field": S, "message": S, "code": S},
    "Node": {"id": S},
}
#: Types a ``node(id:)`` can resolve to (the Node interface's members the fake knows).
NODE_TYPES = ("BulkOperation", "Order", "Customer")
SORT_KEYS = {
    "customers": {"ID", "UPDATED_AT", "CREATED_AT", "NAME", "RELEVANCE", "LOCATION"},
    "orders": {"ID", "UPDATED_AT", "CREATED_AT", "PROCESSED_AT", "TOTAL_PRICE", "RELEVANCE"},
    "abandonedCheckouts": {"ID", "CHECKOUT_ID", "CREATED_AT", "CUSTOMER_NAME", "RELEVANCE",
                           "TOTAL_PRICE"},
}


class GqlError(Exception):
    """A GraphQL error: answered with HTTP 200, ``errors`` and (usually) no data."""

    def __init__(self, message: str, code: str = "BAD_REQUEST", **extensions: Any):
        super().__init__(message)
        self.payload = {"message": message, "extensions": {"code": code, **extensions}}


class AccessDenied(Exception):
    def __init__(self, field_name: str, scope: str):
        super().__init__(field_name)
        self.payload = {
            "message": f"Access denied for {field_name} field. Required access: `{scope}` "
                       "access scope.",
            "extensions": {"code": "ACCESS_DENIED",
                           "documentation": "https://shopify.dev/api/usage/access-scopes",
                           "requiredAccess": f"`{scope}` access scope."},
            "path": [field_name],
        }


# -- data -------------------------------------------------------------------------------------


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    """A search-filter or DateTime value as a UTC timestamp (date-only means midnight UTC)."""
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def money(amount: float, currency: str = "USD") -> dict[str, str]:
    return {"amount": f"{amount:.2f}", "currencyCode": currency}


def money_bag(amount: float, currency: str = "USD") -> dict[str, Any]:
    return {"shopMoney": money(amount, currency), "presentmentMoney": money(amount, currency)}


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


@dataclass
class Shop:
    """A shop's data in Shopify's own shapes, with sorted indexes for the search filter."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    checkouts: list[dict[str, Any]] = field(default_factory=list)
    name: str = "Fake Shop"
    domain: str = "fake-shop.myshopify.com"
    _indexes: dict[tuple[str, str], tuple[list[tuple[float, int]], list[dict[str, Any]]]] = \
        field(default_factory=dict)
    _gids: dict[str, dict[str, Any]] | None = None

    def collection(self, root: str) -> list[dict[str, Any]]:
        return {"customers": self.customers, "orders": self.orders,
                "abandonedCheckouts": self.checkouts}[root]

    def by_gid(self, value: str) -> dict[str, Any] | None:
        if self._gids is None:
            self._gids = {item["id"]: item for item in [*self.customers, *self.orders]}
        return self._gids.get(value)

    def index(self, root: str, key: str) -> tuple[list[tuple[float, int]], list[dict[str, Any]]]:
        """Items sorted by (timestamp field, numeric id), with the sort keys beside them.

        The id breaks ties, so a cursor names one position even among equal timestamps."""
        cached = self._indexes.get((root, key))
        if cached is None:
            items = sorted(self.collection(root), key=lambda o: (parse_time(o[key]), o["_n"]))
            cached = ([(parse_time(o[key]), o["_n"]) for o in items], items)
            self._indexes[(root, key)] = cached
        return cached

    def changed(self) -> None:
        self._indexes.clear()
        self._gids = None

    def update(self, item: dict[str, Any], when: dt.datetime, **changes: Any) -> None:
        """Change fields of a customer, order or checkout, stamping ``updatedAt``."""
        item.update(changes)
        item["updatedAt"] = iso(when)
        self.changed()

    def add_order(self, order: dict[str, Any]) -> None:
        self.orders.append(order)
        self.changed()


_FIRST = ["Ada", "Bob", "Chen", "Dana", "Eli", "Fay", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lea"]
_LAST = ["Norman", "Lovelace", "Okafor", "Silva", "Tanaka", "Weber", "Young", "Zhou"]
_TAGS = ["vip", "wholesale", "newsletter", "local", "returning", "staff"]
_STATES = ["SUBSCRIBED", "NOT_SUBSCRIBED", "UNSUBSCRIBED", "PENDING", "REDACTED", "INVALID"]
_CITIES = [("Louisville", "Kentucky", "KY", "40202"), ("Austin", "Texas", "TX", "73301"),
           ("Portland", "Oregon", "OR", "97201"), ("Boston", "Massachusetts", "MA", "02108")]
_LOCATIONS = [{"id": gid("Location", 1), "name": "Downtown"},
              {"id": gid("Location", 2), "name": "Airport Kiosk"}]


def make_customer(number: int, rng: random.Random, created: dt.datetime,
                  updated: dt.datetime) -> dict[str, Any]:
    """One customer with every field the schema declares, contact details in both the flat
    (pre-2025-04) and the object (2025-04+) shapes, consistent with each other."""
    has_email = rng.random() > 0.03
    has_phone = rng.random() < 0.4 or not has_email
    email = f"customer{number}@example.com" if has_email else None
    phone = f"+1212{2000000 + number}" if has_phone else None
    email_state = rng.choice(_STATES)
    sms_state = rng.choice(_STATES[:5])
    consent_at = iso(created + dt.timedelta(minutes=rng.randint(0, 600)))
    email_at = consent_at if rng.random() > 0.2 else None
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city = rng.choice(_CITIES) if rng.random() > 0.1 else None
    return {
        "_n": number,
        "id": gid("Customer", number),
        "legacyResourceId": str(number),
        "firstName": first,
        "lastName": last,
        "displayName": f"{first} {last}",
        "email": email,
        "phone": phone,
        "createdAt": iso(created),
        "updatedAt": iso(updated),
        "tags": sorted(rng.sample(_TAGS, rng.randint(0, 2))),
        "numberOfOrders": "0",
        "amountSpent": money(0),
        "state": "ENABLED",
        "verifiedEmail": has_email,
        "note": None,
        "defaultAddress": None if city is None else {
            "address1": f"{number} Main St", "address2": None, "city": city[0],
            "province": city[1], "provinceCode": city[2], "country": "United States",
            "countryCodeV2": "US", "zip": city[3], "phone": phone, "company": None,
            "firstName": first, "lastName": last, "name": f"{first} {last}"},
        "emailMarketingConsent": None if email is None else {
            "marketingState": email_state, "marketingOptInLevel": "SINGLE_OPT_IN",
            "consentUpdatedAt": email_at},
        "smsMarketingConsent": None if phone is None else {
            "marketingState": sms_state, "marketingOptInLevel": "SINGLE_OPT_IN",
            "consentUpdatedAt": consent_at, "consentCollectedFrom": "SHOPIFY"},
        "defaultEmailAddress": None if email is None else {
            "emailAddress": email, "marketingState": email_state,
            "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": email_at,
            "validFormat": True},
        "defaultPhoneNumber": None if phone is None else {
            "phoneNumber": phone, "marketingState": sms_state,
            "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": consent_at,
            "marketingCollectedFrom": "SHOPIFY"},
    }


def make_line(number: int, rng: random.Random, products: list[dict[str, Any] | None]
              ) -> tuple[dict[str, Any], float]:
    product = rng.choice(products)
    quantity = rng.randint(1, 3)
    price = rng.choice([9.5, 12.0, 19.99, 24.0, 45.5, 80.0])
    discounted = round(price * quantity * rng.choice([1, 1, 1, 0.9]), 2)
    title = product["title"] if product else f"Retired item {number % 7}"
    sku = None if rng.random() < 0.1 else f"SKU-{number % 97}"
    return {
        "_n": number,
        "id": gid("LineItem", number),
        "title": title,
        "name": title,
        "quantity": quantity,
        "currentQuantity": quantity,
        "sku": sku,
        "vendor": product["vendor"] if product else "Old Vendor",
        "variant": None if product is None else {"id": gid("ProductVariant", number % 500),
                                                 "sku": sku, "title": "Default"},
        "product": product,
        "originalUnitPriceSet": money_bag(price),
        "discountedTotalSet": money_bag(discounted),
        "originalTotalSet": money_bag(price * quantity),
    }, discounted


def make_shop(customers: int = 50, orders: int = 200, *, checkouts: int | None = None,
              seed: int = 7, long_orders: int | None = None) -> Shop:
    """A deterministic shop: ties in ``updatedAt`` (imports stamp many records alike), guests,
    cancelled, test, refunded and POS orders, deleted products, orders with more lines than one
    page carries (``long_orders``), and abandoned checkouts with and without a customer."""
    rng = random.Random(seed)
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    products: list[dict[str, Any] | None] = [
        {"id": gid("Product", p), "title": f"Product {p}",
         "productType": rng.choice(["Shoes", "Shirts", "Bags", ""]),
         "vendor": rng.choice(["Acme", "Globex", "Initech"]),
         "tags": sorted(rng.sample(["summer", "sale", "eco", "gift"], rng.randint(0, 2)))}
        for p in range(1, 61)
    ]
    products += [None] * 3  # deleted products: ~5% of lines
    shop = Shop()
    updated = start
    for number in range(1, customers + 1):
        created = start + dt.timedelta(minutes=rng.randint(0, 700 * 1440))
        # Every tenth customer shares the previous one's updatedAt, like a bulk import.
        if number % 10 or number == 1:
            updated = created + dt.timedelta(minutes=rng.randint(0, 200 * 1440))
        else:
            updated = max(updated, created)
        shop.customers.append(make_customer(number, rng, created, updated))
    spent: dict[int, float] = {}
    counts: dict[int, int] = {}
    line_number = 0
    long_every = max(1, orders // long_orders) if long_orders else 97
    for number in range(1, orders + 1):
        customer = rng.choice(shop.customers) if customers and rng.random() > 0.05 else None
        created = start + dt.timedelta(minutes=rng.randint(0, 720 * 1440))
        processed = created - dt.timedelta(hours=rng.randint(1, 72)) \
            if rng.random() < 0.05 else created
        n_lines = 13 if number % long_every == 0 else rng.choice([1, 1, 2, 2, 3, 4])
        lines = []
        total = 0.0
        for _ in range(n_lines):
            line_number += 1
            line, amount = make_line(line_number, rng, products)
            lines.append(line)
            total += amount
        total = round(total + rng.choice([0, 0, 5.0, 7.5]), 2)
        source = rng.choices(["web", "pos", "shopify_draft_order"], [70, 20, 10])[0]
        cancelled = created + dt.timedelta(days=1) if rng.random() < 0.03 else None
        refunds = []
        if rng.random() < 0.06:
            for r in range(rng.randint(1, 2)):
                refunds.append({"id": gid("Refund", number * 10 + r),
                                "createdAt": iso(created + dt.timedelta(days=3 + r)),
                                "updatedAt": iso(created + dt.timedelta(days=3 + r)),
                                "note": None,
                                "totalRefundedSet": money_bag(round(total / 4, 2))})
        refunded = round(sum(float(r["totalRefundedSet"]["shopMoney"]["amount"])
                             for r in refunds), 2)
        status = ("VOIDED" if cancelled else "PARTIALLY_REFUNDED" if refunds else
                  rng.choice(["PAID", "PAID", "PAID", "PENDING"]))
        updated_at = created + dt.timedelta(minutes=rng.randint(0, 30 * 1440))
        if refunds:
            updated_at = max(updated_at, created + dt.timedelta(days=3 + len(refunds)))
        guest_email = None if customer else (f"guest{number}@example.net"
                                             if rng.random() > 0.3 else None)
        guest_phone = None if customer or guest_email else f"+1646{5000000 + number}"
        shop.orders.append({
            "_n": number,
            "id": gid("Order", number),
            "legacyResourceId": str(number),
            "name": f"#{1000 + number}",
            "email": customer["email"] if customer else guest_email,
            "phone": customer["phone"] if customer else guest_phone,
            "createdAt": iso(created),
            "processedAt": iso(processed),
            "updatedAt": iso(updated_at),
            "cancelledAt": iso(cancelled) if cancelled else None,
            "cancelReason": "CUSTOMER" if cancelled else None,
            "closedAt": None,
            "currencyCode": "USD",
            "test": rng.random() < 0.01,
            "sourceName": source,
            "tags": [],
            "displayFinancialStatus": status,
            "displayFulfillmentStatus": "FULFILLED",
            "totalPriceSet": money_bag(total),
            "subtotalPriceSet": money_bag(total),
            "totalRefundedSet": money_bag(refunded),
            "currentTotalPriceSet": money_bag(total - refunded),
            "customer": customer,
            "retailLocation": rng.choice(_LOCATIONS) if source == "pos" else None,
            "refunds": refunds,
            "lineItems": lines,
        })
        if customer is not None:
            counts[customer["_n"]] = counts.get(customer["_n"], 0) + 1
            spent[customer["_n"]] = spent.get(customer["_n"], 0.0) + total
    for customer in shop.customers:
        customer["numberOfOrders"] = str(counts.get(customer["_n"], 0))
        customer["amountSpent"] = money(spent.get(customer["_n"], 0.0))
    wanted = max(2, customers // 50) if checkouts is None else checkouts
    for number in range(1, wanted + 1):
        customer = rng.choice(shop.customers) if customers and number % 5 else None
        created = start + dt.timedelta(minutes=rng.randint(0, 700 * 1440))
        completed = created + dt.timedelta(hours=5) if number % 4 == 0 else None
        shop.checkouts.append({
            "_n": number,
            "id": gid("AbandonedCheckout", number),
            "name": f"#C{number}",
            "createdAt": iso(created),
            "updatedAt": iso(created + dt.timedelta(hours=1)),
            "completedAt": iso(completed) if completed else None,
            "abandonedCheckoutUrl": f"https://fake-shop.myshopify.com/checkouts/{number}/recover",
            "note": "",
            "customer": customer,
            "totalPriceSet": money_bag(50.0),
        })
    return shop


# -- the search filter ------------------------------------------------------------------------

_TERM = re.compile(r"""^(?P<field>[a-z_]+):(?P<op><=|>=|<|>)?(?P<value>'[^']*'|"[^"]*"|\S+)$""")
_FILTER_FIELDS = {"updated_at": "updatedAt", "created_at": "createdAt"}


def parse_search(text: str | None) -> list[tuple[str, str, float]]:
    """``updated_at:>='…' AND updated_at:<'…'`` → [(field, op, timestamp)]; strict about what
    it does not understand, so a client's malformed filter fails loudly instead of matching
    everything."""
    if not text:
        return []
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.match(part.strip())
        if match is None or match["field"] not in _FILTER_FIELDS:
            raise GqlError(f"fake Shopify: unsupported search term {part!r} in {text!r}")
        value = match["value"]
        if value[0] in "'\"":
            value = value[1:-1]
        elif ":" in value:
            # Unquoted, the colons of a time would split the term.
            raise GqlError(f"fake Shopify: date-time {value!r} must be quoted in {text!r}")
        try:
            stamp = parse_time(value)
        except ValueError:
            raise GqlError(f"fake Shopify: {value!r} is not a date in {text!r}") from None
        terms.append((_FILTER_FIELDS[match["field"]], match["op"] or "=", stamp))
    return terms


def matches(item: dict[str, Any], terms: list[tuple[str, str, float]]) -> bool:
    for name, op, stamp in terms:
        value = parse_time(item[name])
        if not {"<": value < stamp, "<=": value <= stamp, ">": value > stamp,
                ">=": value >= stamp, "=": value == stamp}[op]:
            return False
    return True


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise GqlError(f"Invalid cursor for current pagination: {cursor!r}") from None


# -- execution --------------------------------------------------------------------------------


class _Children(list):
    """A nested connection's nodes during a bulk run: they become JSONL lines of their own."""


@dataclass
class Step:
    key: str
    name: str
    spec: F
    args: dict[str, Any]
    selection: SelectionSetNode | None


class Execution:
    """One document run against the fake: static validation and cost, then execution."""

    def __init__(self, fake: ShopifyFake, document: DocumentNode,
                 operation: OperationDefinitionNode, variables: dict[str, Any], version: str,
                 token: str, *, bulk: bool = False):
        self.fake = fake
        self.shop = fake.shop
        self.version = version
        self.token = token
        self.bulk = bulk
        self.operation = operation
        self.root_type = "Mutation" if operation.operation == OperationType.MUTATION \
            else "QueryRoot"
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        self.variables = self._variables(variables)
        self.actual = 0
        self.errors: list[dict[str, Any]] = []
        self.connections: list[int] = []  # depth of every connection (bulk limits)
        self._plans: dict[tuple[str, int], list[Step]] = {}

    def _variables(self, given: dict[str, Any]) -> dict[str, Any]:
        values = dict(given)
        for definition in self.operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in values:
                if definition.default_value is not None:
                    values[name] = value_from_ast_untyped(definition.default_value)
                elif isinstance(definition.type, NonNullTypeNode):
                    raise GqlError(f"Variable ${name} of type "
                                   f"{_type_text(definition.type)} was provided invalid value",
                                   "INVALID_VARIABLE")
            elif values[name] is None and isinstance(definition.type, NonNullTypeNode):
                raise GqlError(f"Variable ${name} of type {_type_text(definition.type)} "
                               "was provided invalid value", "INVALID_VARIABLE")
        return values

    # -- static validation and requested cost ----------------------------------------------

    def spec(self, type_name: str, name: str) -> F:
        spec = SCHEMA[type_name].get(name)
        if spec is None or (spec.since and not at_least(self.version, spec.since)):
            raise GqlError(f"Field '{name}' doesn't exist on type '{type_name}'",
                           "undefinedField", typeName=type_name, fieldName=name)
        return spec

    def arguments(self, node: FieldNode, spec: F) -> dict[str, Any]:
        accepted = {a for a, since in spec.args if since is None or at_least(self.version, since)}
        args = {}
        for argument in node.arguments or ():
            name = argument.name.value
            if name not in accepted:
                raise GqlError(f"Field '{node.name.value}' doesn't accept argument '{name}'",
                               "argumentNotAccepted", name=node.name.value, typeName="Field",
                               argumentName=name)
            value = value_from_ast_untyped(argument.value, self.variables)
            if value is not Undefined:
                args[name] = value
        missing = [r for r in spec.required if args.get(r) is None]
        if missing:
            raise GqlError(f"Field '{node.name.value}' is missing required arguments: "
                           f"{', '.join(missing)}", "missingRequiredArguments")
        return args

    def selections(self, type_name: str, selection: SelectionSetNode,
                   runtime: str | None) -> Iterator[tuple[FieldNode, str]]:
        """Fields of a selection set with the type each applies to, fragments expanded.

        ``runtime`` None (validation) walks every fragment; otherwise only those whose type
        condition is the runtime type."""
        for node in selection.selections:
            if node.directives:
                raise GqlError("fake Shopify: directives are not supported")
            if isinstance(node, FieldNode):
                yield node, type_name
                continue
            if isinstance(node, FragmentSpreadNode):
                definition = self.fragments.get(node.name.value)
                if definition is None:
                    raise GqlError(f"Fragment {node.name.value} was used, but not defined",
                                   "useAndDefineFragment")
                condition, inner = definition.type_condition.name.value, definition.selection_set
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else type_name
                inner = node.selection_set
            else:  # pragma: no cover - graphql-core has no other selection kinds
                raise GqlError("fake Shopify: unknown selection")
            if condition != type_name and not (type_name == "Node" and condition in NODE_TYPES):
                raise GqlError(f"Fragment on {condition} can't be spread inside {type_name}",
                               "fragmentSpreadImpossible")
            if runtime is None or condition in (runtime, type_name):
                yield from self.selections(condition, inner, runtime)

    def check(self, type_name: str, selection: SelectionSetNode, depth: int = 0) -> float:
        """Validate a selection and return its requested cost."""
        cost = 0.0
        for node, owner in self.selections(type_name, selection, None):
            name = node.name.value
            if name == "__typename":
                continue
            spec = self.spec(owner, name)
            args = self.arguments(node, spec)
            if spec.type is None:
                if node.selection_set:
                    raise GqlError(f"Selections can't be made on scalars (field '{name}' "
                                   "returns a scalar but has selections)", "selectionMismatch")
                continue
            if not node.selection_set:
                raise GqlError(f"Field must have selections (field '{name}' returns "
                               f"{spec.type} but has no selections. Did you mean "
                               f"'{name} {{ ... }}'?)", "selectionMismatch")
            if spec.shape == "conn":
                # Shopify's rule: a connection costs 2 plus its page size times one node.
                self.connections.append(depth + 1)
                size = args.get("first") or args.get("last")
                if not self.bulk:
                    if size is None:
                        raise GqlError("you must provide one of first or last", "BAD_REQUEST")
                    if size > MAX_PAGE:
                        raise GqlError(f"The maximum number of records per page is {MAX_PAGE} "
                                       f"('{name}' asked for {size})", "BAD_REQUEST")
                if "sortKey" in args and args["sortKey"] not in SORT_KEYS.get(name, {"ID"}):
                    raise GqlError(f"Argument 'sortKey' on Field '{name}' has an invalid value "
                                   f"({args['sortKey']})", "argumentLiteralsIncompatible")
                cost += 2 + (size or 1) * self.check_connection(spec.type, node.selection_set,
                                                                depth + 1)
            elif spec.shape == "list":
                # A plain list (refunds) is priced like one object unless given a size.
                cost += (args.get("first") or 1) * (1 + self.check(spec.type, node.selection_set,
                                                                   depth))
            else:
                cost += 1 + self.check(spec.type, node.selection_set, depth)
        return cost

    def check_connection(self, item: str, selection: SelectionSetNode, depth: int) -> float:
        per_node = 0.0
        for node, _ in self.selections(f"{item}Connection", selection, None):
            name = node.name.value
            if name == "edges":
                for inner, _ in self.selections(f"{item}Edge", node.selection_set, None):
                    if inner.name.value == "node":
                        per_node += 1 + self.check(item, inner.selection_set, depth)
                    elif inner.name.value != "cursor":
                        raise GqlError(f"Field '{inner.name.value}' doesn't exist on type "
                                       f"'{item}Edge'", "undefinedField")
            elif name == "nodes":
                per_node += 1 + self.check(item, node.selection_set, depth)
            elif name == "pageInfo":
                for inner, _ in self.selections("PageInfo", node.selection_set, None):
                    if inner.name.value not in ("hasNextPage", "hasPreviousPage", "startCursor",
                                                "endCursor"):
                        raise GqlError(f"Field '{inner.name.value}' doesn't exist on type "
                                       "'PageInfo'", "undefinedField")
            elif name != "__typename":
                raise GqlError(f"Field '{name}' doesn't exist on type '{item}Connection'",
                               "undefinedField")
        return per_node

    def requested_cost(self) -> float:
        cost = self.check(self.root_type, self.operation.selection_set)
        # Mutations cost a flat 10 on Shopify, whatever they select.
        return 10.0 if self.root_type == "Mutation" else cost

    # -- execution --------------------------------------------------------------------------

    def plan(self, type_name: str, selection: SelectionSetNode) -> list[Step]:
        key = (type_name, id(selection))
        steps = self._plans.get(key)
        if steps is None:
            steps = []
            for node, owner in self.selections(type_name, selection, type_name):
                name = node.name.value
                spec = S if name == "__typename" else SCHEMA[owner][name]
                args = {} if name == "__typename" else self.arguments(node, spec)
                steps.append(Step(node.alias.value if node.alias else name, name, spec, args,
                                  node.selection_set))
            self._plans[key] = steps
        return steps

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for step in self.plan(self.root_type, self.operation.selection_set):
            try:
                out[step.key] = self.root_field(step)
            except AccessDenied as denied:
                out[step.key] = None
                self.errors.append(denied.payload)
        return out

    def select(self, type_name: str, item: dict[str, Any],
               selection: SelectionSetNode) -> dict[str, Any]:
        # The actual cost counts the objects really returned: fewer than a full page asked.
        self.actual += 1
        out: dict[str, Any] = {}
        for step in self.plan(type_name, selection):
            if step.name == "__typename":
                out[step.key] = type_name
                continue
            spec = step.spec
            if spec.type is None:
                out[step.key] = item[step.name]
            elif spec.shape == "conn":
                out[step.key] = self.connection(spec.type, item[step.name], step)
            elif spec.shape == "list":
                out[step.key] = [self.select(spec.type, v, step.selection)
                                 for v in item[step.name]]
            else:
                value = item[step.name]
                out[step.key] = None if value is None else self.select(spec.type, value,
                                                                       step.selection)
        return out

    def connection(self, item_type: str, items: list[dict[str, Any]], step: Step,
                   keys: list[Any] | None = None, has_next: bool = False) -> Any:
        """Project a page of ``items`` (already cut to the page) through a connection's
        selection. ``keys`` are the items' cursors (positions when None)."""
        args = step.args
        assert step.selection is not None
        if keys is None:
            start = decode_cursor(args["after"]) + 1 if args.get("after") else 0
            size = args.get("first") or len(items)
            if self.bulk:
                size = len(items)
            has_next = start + size < len(items)
            keys = list(range(start, min(len(items), start + size)))
            items = items[start:start + size]
        self.actual += 2
        if self.bulk:
            return _Children(self.select(item_type, item, sel)
                             for item in items for sel in _node_selections(step.selection))
        out: dict[str, Any] = {}
        for node in step.selection.selections:
            assert isinstance(node, FieldNode)
            key = node.alias.value if node.alias else node.name.value
            if node.name.value == "nodes":
                out[key] = [self.select(item_type, item, node.selection_set) for item in items]
            elif node.name.value == "edges":
                out[key] = [self.edge(item_type, item, cursor, node.selection_set)
                            for item, cursor in zip(items, keys, strict=True)]
            elif node.name.value == "pageInfo":
                info = {"hasNextPage": has_next, "hasPreviousPage": bool(args.get("after")),
                        "startCursor": encode_cursor(keys[0]) if keys else None,
                        "endCursor": encode_cursor(keys[-1]) if keys else None}
                out[key] = {(n.alias.value if n.alias else n.name.value): info[n.name.value]
                            for n in node.selection_set.selections
                            if isinstance(n, FieldNode)}
            else:
                out[key] = f"{item_type}Connection"
        return out

    def edge(self, item_type: str, item: dict[str, Any], cursor: Any,
             selection: SelectionSetNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for node in selection.selections:
            assert isinstance(node, FieldNode)
            key = node.alias.value if node.alias else node.name.value
            out[key] = (encode_cursor(cursor) if node.name.value == "cursor"
                        else self.select(item_type, item, node.selection_set))
        return out

    # -- root fields ------------------------------------------------------------------------

    def require(self, field_name: str, scope: str) -> None:
        scopes = self.fake.tokens[self.token]
        implied = {"read_" + s.removeprefix("write_") for s in scopes if s.startswith("write_")}
        if scope not in scopes | implied:
            raise AccessDenied(field_name, scope)

    def root_field(self, step: Step) -> Any:
        name, args, spec = step.name, step.args, step.spec
        if name in ("customers", "orders", "abandonedCheckouts"):
            self.require(name, {"customers": "read_customers", "orders": "read_orders",
                                "abandonedCheckouts": self.fake.checkout_scope}[name])
            return self.root_connection(name, spec.type or "", step)
        if name in ("customersCount", "ordersCount"):
            root = "customers" if name == "customersCount" else "orders"
            self.require(name, f"read_{root}")
            count = len(self.filtered(root, parse_search(args.get("query"))))
            limit = args.get("limit", 10000)
            precise = limit is None or count <= limit
            return self.select("Count", {"count": count if precise else limit,
                                         "precision": "EXACT" if precise else "AT_LEAST"},
                               step.selection)
        if name in ("order", "customer", "node"):
            found = self.resolve_gid(str(args["id"]))
            if found is None or (name != "node" and found[0] != spec.type):
                return None
            return self.select(found[0], found[1], step.selection)
        if name == "currentBulkOperation":
            op = self.fake.current_operation()
            return None if op is None else self.select("BulkOperation", op.view(self.fake),
                                                       step.selection)
        if name == "currentAppInstallation":
            scopes = [{"handle": s, "description": s} for s in sorted(self.fake.tokens[self.token])]
            return self.select("AppInstallation", {"id": gid("AppInstallation", 1),
                                                   "accessScopes": scopes}, step.selection)
        if name == "shop":
            return self.select("Shop", {"id": gid("Shop", 1), "name": self.shop.name,
                                        "myshopifyDomain": self.shop.domain,
                                        "currencyCode": "USD", "ianaTimezone": "America/New_York",
                                        "email": "owner@example.com"}, step.selection)
        if name == "bulkOperationRunQuery":
            payload = self.fake.start_bulk(self.token, self.version, str(args["query"]),
                                           args.get("groupObjects"))
            return self.select("BulkOperationRunQueryPayload", payload, step.selection)
        raise GqlError(f"fake Shopify: root field {name} is not implemented")

    def resolve_gid(self, value: str) -> tuple[str, dict[str, Any]] | None:
        kind = value.split("/")[3] if value.count("/") >= 4 else ""
        if kind == "BulkOperation":
            op = self.fake.operations.get(value)
            return None if op is None else ("BulkOperation", op.view(self.fake))
        if kind in ("Order", "Customer"):
            self.require(kind.lower(), f"read_{kind.lower()}s")
            item = self.shop.by_gid(value)
            return None if item is None else (kind, item)
        return None

    def visible(self, root: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Without read_all_orders Shopify silently hides orders older than 60 days.
        if root != "orders" or "read_all_orders" in self.fake.tokens[self.token]:
            return items
        horizon = (self.fake.wall() - dt.timedelta(days=60)).timestamp()
        return [o for o in items if parse_time(o["createdAt"]) >= horizon]

    def filtered(self, root: str, terms: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
        return self.visible(root, [o for o in self.shop.collection(root) if matches(o, terms)])

    def root_connection(self, root: str, item_type: str, step: Step) -> Any:
        args = step.args
        terms = parse_search(args.get("query"))
        sort = args.get("sortKey") or "ID"
        reverse = bool(args.get("reverse"))
        hidden = root == "orders" and "read_all_orders" not in self.fake.tokens[self.token]
        if (sort == "UPDATED_AT" and not reverse and not hidden
                and all(t[0] == "updatedAt" for t in terms)):
            # The incremental shape, answered by bisection on a sorted index: a page costs
            # the same however large the shop.
            keys, items = self.shop.index(root, "updatedAt")
            lo, hi = 0, len(keys)
            for _, op, stamp in terms:
                if op in (">=", ">", "="):
                    lo = max(lo, bisect.bisect_left(keys, (stamp, math.inf if op == ">" else
                                                           -math.inf)))
                if op in ("<", "<=", "="):
                    hi = min(hi, bisect.bisect_left(keys, (stamp, -math.inf if op == "<" else
                                                           math.inf)))
            if args.get("after"):
                lo = max(lo, bisect.bisect_right(keys, tuple(decode_cursor(args["after"])),
                                                 lo, max(lo, hi)))
            end = hi if self.bulk else min(hi, lo + (args.get("first") or 0))
            return self.connection(item_type, items[lo:end], step,
                                   keys=[list(k) for k in keys[lo:end]], has_next=end < hi)
        field_name = {"UPDATED_AT": "updatedAt", "CREATED_AT": "createdAt",
                      "PROCESSED_AT": "processedAt"}.get(sort)
        chosen = self.visible(root, [o for o in self.shop.collection(root) if matches(o, terms)])
        ordered = sorted((((parse_time(o[field_name]) if field_name else 0.0), o["_n"]), o)
                         for o in chosen)
        if reverse:
            ordered.reverse()
        if args.get("after"):
            after = tuple(decode_cursor(args["after"]))
            position = next((i for i, (k, _) in enumerate(ordered) if k == after), None)
            if position is None:
                raise GqlError("Invalid cursor for current pagination")
            ordered = ordered[position + 1:]
        size = len(ordered) if self.bulk else (args.get("first") or 0)
        page = ordered[:size]
        return self.connection(item_type, [o for _, o in page], step,
                               keys=[list(k) for k, _ in page], has_next=len(ordered) > size)


def _node_selections(selection: SelectionSetNode) -> list[SelectionSetNode]:
    """The node selections of a bulk connection (``edges { node }`` or ``nodes``)."""
    found = []
    for node in selection.selections:
        assert isinstance(node, FieldNode)
        if node.name.value == "nodes" and node.selection_set:
            found.append(node.selection_set)
        elif node.name.value == "edges" and node.selection_set:
            found.extend(n.selection_set for n in node.selection_set.selections
                         if isinstance(n, FieldNode) and n.name.value == "node"
                         and n.selection_set)
    return found


def _type_text(node: Any) -> str:
    if isinstance(node, NonNullTypeNode):
        return _type_text(node.type) + "!"
    if hasattr(node, "name"):
        return node.name.value
    return f"[{_type_text(node.type)}]"


# -- bulk operations ----------------------------------------------------------------------------


@dataclass
class BulkOp:
    id: str
    query: str
    created_at: str
    status: str = "CREATED"
    polls: int = 0
    error_code: str | None = None
    completed_at: str | None = None
    path: Path | None = None
    object_count: int = 0
    root_count: int = 0
    size: int = 0
    fail: str | None = None

    def view(self, fake: ShopifyFake) -> dict[str, Any]:
        """The operation as ``node``/``currentBulkOperation`` show it; each look is a poll,
        and the operation finishes after ``fake.bulk_polls`` of them."""
        self.polls += 1
        if self.status in ("CREATED", "RUNNING"):
            self.status = "RUNNING"
            if self.polls >= fake.bulk_polls:
                self.status = "FAILED" if self.fail else "COMPLETED"
                self.error_code = self.fail
                self.completed_at = iso(fake.wall())
        done = self.status == "COMPLETED"
        return {
            "id": self.id, "status": self.status, "errorCode": self.error_code,
            "createdAt": self.created_at, "completedAt": self.completed_at,
            "objectCount": str(self.object_count if done else 0),
            "rootObjectCount": str(self.root_count if done else 0),
            "fileSize": str(self.size) if done and self.object_count else None,
            "url": fake.url + f"/bulk/{self.id.rsplit('/', 1)[-1]}.jsonl"
            if done and self.object_count else None,
            "partialDataUrl": None, "query": self.query, "type": "QUERY",
        }


# -- the server -------------------------------------------------------------------------------


@dataclass
class Fault:
    """A scripted failure of the ``at``-th GraphQL request (1-based).

    ``kind``: ``status`` (answer ``status``), ``drop`` (close the connection unanswered) or
    ``drain`` (another app empties the bucket just before this request). ``after``: the request
    takes effect (bucket charged, operation started) and only its answer is replaced.
    """

    at: int
    kind: str = "status"
    status: int = 503
    after: bool = False
    retry_after: float | None = None


@dataclass
class Logged:
    """One GraphQL request as the fake saw it."""

    n: int
    operation: str | None
    roots: list[str]
    variables: dict[str, Any]
    status: int = 200
    requested: float | None = None
    actual: float | None = None
    available: float | None = None
    payable: bool | None = None
    drained: bool = False
    fault: str | None = None


class ShopifyFake(Served):
    """The fake shop's server. Use as a context manager; ``url`` is its base URL."""

    def __init__(
        self,
        shop: Shop | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] | None = None,
        maximum: float = 2000.0,
        restore_rate: float = 100.0,
        max_query_cost: float = 1000.0,
        throttle_status: int = 200,
        bulk_polls: int = 2,
        tokens: dict[str, frozenset[str]] | None = None,
        checkout_scope: str = "read_checkouts",
        seed: int = 11,
    ):
        self.shop = shop or make_shop()
        self.clock = clock
        self.wall = wall or (lambda: dt.datetime.now(dt.UTC))
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.max_query_cost = max_query_cost
        self.throttle_status = throttle_status
        self.bulk_polls = bulk_polls
        self.tokens = dict(tokens or {TOKEN: ALL_SCOPES})
        self.checkout_scope = checkout_scope
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        #: Every GraphQL request from this one on is answered 503 (None: no outage).
        self.down_from: int | None = None
        #: The next bulk operation started ends FAILED with this error code.
        self.fail_next_bulk: str | None = None
        #: The next bulk file download stops after this many bytes.
        self.cut_next_download: int | None = None
        self.log: list[Logged] = []
        self.downloads: list[dict[str, Any]] = []
        self.operations: dict[str, BulkOp] = {}
        self._buckets: dict[str, list[float]] = {}
        self._documents: dict[str, DocumentNode] = {}
        self._lock = threading.RLock()
        self._folder = tempfile.TemporaryDirectory(prefix="fake-shopify-")

    # -- lifecycle --------------------------------------------------------------------------

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._folder.cleanup()

    # -- the cost bucket --------------------------------------------------------------------

    def bucket(self, token: str) -> list[float]:
        """[available, last refill time] of the token's bucket, refilled up to now."""
        now = self.clock()
        state = self._buckets.setdefault(token, [self.maximum, now])
        state[0] = min(self.maximum, state[0] + (now - state[1]) * self.restore_rate)
        state[1] = now
        return state

    def throttle_status_of(self, token: str) -> dict[str, float]:
        # Reported rounded down, as a client must not count on points it has not got.
        return {"maximumAvailable": self.maximum,
                "currentlyAvailable": float(math.floor(self.bucket(token)[0])),
                "restoreRate": self.restore_rate}

    # -- bulk -------------------------------------------------------------------------------

    def current_operation(self) -> BulkOp | None:
        """The app's latest bulk query operation (the fake serves one app)."""
        return next(reversed(self.operations.values()), None)

    def start_bulk(self, token: str, version: str, query: str,
                   group: bool | None) -> dict[str, Any]:
        running = [op for op in self.operations.values() if op.status in ("CREATED", "RUNNING")]
        if running:
            return {"bulkOperation": None, "userErrors": [{
                "field": None, "code": "OPERATION_IN_PROGRESS",
                "message": "A bulk query operation for this app and shop is already in "
                           f"progress: {running[0].id}."}]}
        try:
            lines = self.bulk_lines(token, version, query)
        except GqlError as exc:
            return {"bulkOperation": None, "userErrors": [{
                "field": ["query"], "code": "INVALID",
                "message": f"Invalid bulk query: {exc.payload['message']}"}]}
        # The file is written at once (a snapshot at start) and shown only once completed.
        number = len(self.operations) + 1
        op = BulkOp(gid("BulkOperation", number), query, iso(self.wall()),
                    fail=self.fail_next_bulk)
        self.fail_next_bulk = None
        # groupObjects defaults to true until 2026-01 and false from then on.
        grouped = group if group is not None else not at_least(version, "2026-01")
        op.path = Path(self._folder.name) / f"{number}.jsonl"
        with op.path.open("w", encoding="utf-8") as out:
            for line in (lines if grouped else self.scatter(lines)):
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                op.object_count += 1
                op.root_count += "__parentId" not in line
        op.size = op.path.stat().st_size
        self.operations[op.id] = op
        return {"bulkOperation": op.view(self), "userErrors": []}

    def bulk_lines(self, token: str, version: str, query: str) -> list[dict[str, Any]]:
        """Run a bulk query's document and flatten it into JSONL lines, grouped."""
        document = parse(query)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            raise GqlError("a bulk query must be exactly one query operation")
        run = Execution(self, document, operations[0], {}, version, token, bulk=True)
        run.check(run.root_type, operations[0].selection_set)
        roots = [n.name.value for n in operations[0].selection_set.selections
                 if isinstance(n, FieldNode)]
        if any(r in ("node", "nodes") for r in roots):
            raise GqlError("top-level node and nodes fields are not supported in bulk queries")
        if not run.connections:
            raise GqlError("bulk queries must contain at least one connection")
        if len(run.connections) > 5 or max(run.connections) > 2:
            raise GqlError("bulk queries may have at most 5 connections, nested at most 2 deep")
        data = run.run()
        if run.errors:
            raise GqlError(run.errors[0]["message"])
        out: list[dict[str, Any]] = []
        for value in data.values():
            for node in value if isinstance(value, _Children) else ():
                self._flatten(node, None, out)
        return out

    def _flatten(self, node: dict[str, Any], parent: str | None,
                 out: list[dict[str, Any]]) -> None:
        # Nested connections leave the parent's line and become lines of their own; nested
        # objects (money, customer { id }) stay inline.
        own = {k: v for k, v in node.items() if not isinstance(v, _Children)}
        nested = [v for v in node.values() if isinstance(v, _Children)]
        if nested and "id" not in own:
            raise GqlError("bulk queries must select id on nodes with nested connections")
        if parent is not None:
            own["__parentId"] = parent
        out.append(own)
        for children in nested:
            for child in children:
                self._flatten(child, own["id"], out)

    def scatter(self, lines: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Lines with children held back and let out later at random: always after their
        parent, rarely right after it, as Shopify writes ungrouped files."""
        written: set[str] = set()
        pending: list[dict[str, Any]] = []
        for line in lines:
            if "__parentId" in line:
                pending.append(line)
                continue
            written.add(line["id"])
            yield line
            # About as many children leave per parent as arrive, so few wait long.
            for _ in range(self.rng.randint(0, 6)):
                if not pending:
                    break
                pick = self.rng.randrange(min(len(pending), 16))
                if pending[pick]["__parentId"] in written:
                    chosen = pending.pop(pick)
                    written.add(chosen.get("id", ""))
                    yield chosen
        # What is left keeps the grouped order, in which every parent precedes its children.
        yield from pending

    # -- requests ---------------------------------------------------------------------------

    def handle(self, version: str, token: str | None,
               body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """Answer one GraphQL POST: (status, JSON body or None to drop, extra headers)."""
        with self._lock:
            entry = Logged(len(self.log) + 1, None, [], {})
            self.log.append(entry)
            fault = next((f for f in self.faults if f.at == entry.n), None)
            # The order Shopify's front end checks things in: auth, availability, scripted
            # faults, then the query itself.
            if token not in self.tokens:
                entry.status = 401
                return 401, {"errors": "[API] Invalid API key or access token (unrecognized "
                                       "login or wrong password)"}, {}
            if self.down_from is not None and entry.n >= self.down_from:
                entry.status, entry.fault = 503, "outage"
                return 503, {"errors": "Service Unavailable"}, {}
            if fault is not None and not fault.after and fault.kind != "drain":
                return self._fault(entry, fault, token)
            if fault is not None and fault.kind == "drain":
                self.bucket(token)[0] = 0.0
                entry.drained = True
            answer = self._answer(entry, version, token, body)
            if fault is not None and fault.after and fault.kind != "drain":
                return self._fault(entry, fault, token)
            return answer

    def _fault(self, entry: Logged, fault: Fault,
               token: str) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        entry.fault = f"{fault.kind} {fault.status}{' after' if fault.after else ''}"
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "drop":
            entry.status = 0
            return 0, None, {}
        entry.status = fault.status
        if fault.status == 429:
            return 429, {"errors": [{"message": "Throttled",
                                     "extensions": {"code": "THROTTLED"}}],
                         "extensions": {"cost": {"requestedQueryCost": entry.requested,
                                                 "actualQueryCost": None,
                                                 "throttleStatus":
                                                     self.throttle_status_of(token)}}}, headers
        return fault.status, {"errors": "Internal Server Error"}, headers

    def _answer(self, entry: Logged, version: str, token: str,
                body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            request = json.loads(body)
            text = request["query"]
        except (ValueError, KeyError, TypeError):
            entry.status = 400
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}, {}
        variables = request.get("variables") or {}
        entry.variables = variables
        try:
            document = self._documents.get(text)
            if document is None:
                document = self._documents[text] = parse(text)
            operations = [d for d in document.definitions
                          if isinstance(d, OperationDefinitionNode)]
            wanted = request.get("operationName")
            chosen = [o for o in operations if wanted is None or
                      (o.name and o.name.value == wanted)]
            if len(chosen) != 1:
                raise GqlError("An operation name is required" if len(chosen) > 1
                               else f"No operation named {wanted!r}")
            operation = chosen[0]
            entry.operation = operation.name.value if operation.name else None
            entry.roots = [n.name.value for n in operation.selection_set.selections
                           if isinstance(n, FieldNode)]
            run = Execution(self, document, operation, variables, version, token)
            requested = run.requested_cost()
        except GraphQLSyntaxError as exc:
            return 200, {"errors": [{"message": exc.message,
                                     "extensions": {"code": "parseError"}}]}, {}
        except GqlError as exc:
            return 200, {"errors": [exc.payload]}, {}
        entry.requested = requested
        limit = min(self.max_query_cost, self.maximum)
        if requested > limit:
            return 200, {"errors": [{
                "message": f"Query cost is {requested:.0f}, which exceeds the single query "
                           f"max cost limit ({limit:.0f}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                               "maxCost": limit}}]}, {}
        state = self.bucket(token)
        entry.available = state[0]
        entry.payable = state[0] >= requested
        if not entry.payable:
            entry.status = self.throttle_status
            return self.throttle_status, {
                "errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED",
                                           "documentation":
                                               "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested,
                                        "actualQueryCost": None,
                                        "throttleStatus": self.throttle_status_of(token)}}}, {}
        # Charged up front, refunded below to the actual cost, as Shopify does.
        state[0] -= requested
        try:
            data = run.run()
        except GqlError as exc:
            state[0] += requested
            return 200, {"errors": [exc.payload]}, {}
        actual = requested if run.root_type == "Mutation" else min(requested, run.actual)
        entry.actual = actual
        state[0] = min(self.maximum, state[0] + requested - actual)
        payload: dict[str, Any] = {"data": data}
        if run.errors:
            payload["errors"] = run.errors
        payload["extensions"] = {"cost": {"requestedQueryCost": requested,
                                          "actualQueryCost": actual,
                                          "throttleStatus": self.throttle_status_of(token)}}
        return 200, payload, {}

    def download(self, name: str, token: str | None) -> tuple[int, bytes, int | None]:
        """A bulk file: (status, body, bytes to send before cutting the connection)."""
        with self._lock:
            self.downloads.append({"name": name, "token_sent": token is not None})
            if token is not None:
                # The real file lives on a storage host; an Admin token sent there leaks.
                return 400, b"the Admin API access token must not be sent to the storage host", \
                    None
            op = next((o for o in self.operations.values()
                       if o.path is not None and o.path.name == name), None)
            if op is None or op.status != "COMPLETED":
                return 404, b"NoSuchKey", None
            cut, self.cut_next_download = self.cut_next_download, None
            return 200, op.path.read_bytes(), cut


class _Handler(QuietHandler):
    fake: ShopifyFake
    # Headers and body leave in one write, and at once: split small writes meet the client's
    # delayed ACK and cost ~40 ms a request.
    wbufsize = -1
    _PATH = re.compile(r"^/admin/api/(\d{4}-\d{2}|unstable)/graphql\.json$")

    def _send(self, status: int, body: bytes, headers: dict[str, str],
              content_type: str = "application/json", cut: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        match = self._PATH.match(self.path)
        if match is None:
            self._send(404, b'{"errors":"Not Found"}', {})
            return
        version = match.group(1)
        status, payload, headers = self.fake.handle(
            version, self.headers.get("X-Shopify-Access-Token"), body)
        if payload is None:
            self.close_connection = True
            return
        self._send(status, json.dumps(payload).encode(),
                   {"X-Shopify-API-Version": version, **headers})

    def do_GET(self) -> None:
        match = re.match(r"^/bulk/(\d+\.jsonl)$", self.path)
        if match is None:
            self._send(404, b"Not Found", {}, "text/plain")
            return
        status, body, cut = self.fake.download(match.group(1),
                                               self.headers.get("X-Shopify-Access-Token"))
        self._send(status, body, {}, "application/jsonl", cut=cut)


# Set here: the handler is defined after the fake it serves.
ShopifyFake.handler = _Handler


class VirtualClock:
    """Time that passes only when someone sleeps: shared by the fake's bucket and the client,
    so throttling is exercised in full without a test waiting for real."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
