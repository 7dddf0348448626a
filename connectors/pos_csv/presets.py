"""Column mappings for the exports retailers actually have: Square and Shopify admin CSVs.

Headers come from ``reference/shopify-and-pos.md`` §2. Columns are looked up by name (case and
surrounding spaces ignored), never by position: Square grew its exports from 24 to 35 (items)
and 44 to 55 (transactions) columns over the years, and the order is not guaranteed. A field
lists every header name it has been seen under; the first one present in a file wins. A
name starting with ``*`` matches any header ending with the rest (Shopify metafield columns
carry a store-specific label before the metafield's key).

Only the fields in ``required`` must be present; a missing one stops the file. The rest are
read when the file has them, so older and newer exports both import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segsync.core.records import Consent

from .fields import Stream


@dataclass(frozen=True)
class Preset:
    """How one vendor's export maps onto canonical fields."""

    stream: Stream
    #: canonical field → header names to try, first present wins.
    mapping: dict[str, tuple[str, ...]]
    required: frozenset[str]
    #: custom person attribute → header names (read when present).
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: lower-cased column value → consent state, for the consent columns mapped above.
    consent_values: dict[str, Consent] = field(default_factory=dict)
    #: column → value marking a refund row (checked only when the column is present).
    refund_when: dict[str, str] = field(default_factory=dict)
    #: prefix of ``Customer.link_id`` (the vendor's customer ids are shared across exports).
    link_namespace: str | None = None
    #: values the export writes for "nothing" (Square's ``None`` category), read as blank.
    blank_values: frozenset[str] = frozenset()


# Square's "Email Subscription Status": blank and "unknown" stay unknown (None). The real
# export reported 0 subscribed of 1,670 customers, so nothing else is read as an opt-in.
_SQUARE_CONSENT: dict[str, Consent] = {
    "subscribed": "subscribed",
    "unsubscribed": "unsubscribed",
    "bounced": "cleaned",
}

# Shopify's yes/no columns say whether the customer accepted marketing when asked.
_SHOPIFY_CONSENT: dict[str, Consent] = {
    "yes": "subscribed",
    "no": "not_subscribed",
}

_SQUARE_SALE_CUSTOMER = {
    "customer_key": ("Customer ID",),
    "full_name": ("Customer Name",),
}

PRESETS: dict[str, Preset] = {
    "square_customers": Preset(
        stream="customers",
        mapping={
            "customer_key": ("Square Customer ID",),
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "email": ("Email Address",),
            "phone": ("Phone Number",),
            "city": ("City",),
            "region": ("State",),
            "postal_code": ("Postal Code",),
            "birth_date": ("Birthday",),
            "email_consent": ("Email Subscription Status",),
            "created_at": ("Creation Date", "First Visit"),
        },
        required=frozenset({"customer_key"}),
        attributes={
            "reference_id": ("Reference ID", "Customer Reference ID"),
            "company": ("Company Name",),
        },
        consent_values=_SQUARE_CONSENT,
        link_namespace="square",
    ),
    "square_items": Preset(
        stream="orders",
        mapping={
            "order_key": ("Transaction ID",),
            "ordered_at": ("Date",),
            "ordered_time": ("Time",),
            **_SQUARE_SALE_CUSTOMER,
            "title": ("Item",),
            "category": ("Category",),
            "sku": ("SKU",),
            "quantity": ("Qty",),
            "amount": ("Net Sales",),
            "location": ("Location",),
            "channel": ("Channel",),
        },
        required=frozenset({"order_key", "ordered_at", "amount"}),
        refund_when={"Event Type": "Refund"},
        link_namespace="square",
        blank_values=frozenset({"None"}),
    ),
    "square_transactions": Preset(
        stream="orders",
        mapping={
            "order_key": ("Transaction ID",),
            "ordered_at": ("Date",),
            "ordered_time": ("Time",),
            **_SQUARE_SALE_CUSTOMER,
            "total": ("Net Sales",),
            "refunded": ("Partial Refunds",),
            "financial_status": ("Transaction Status",),
            "location": ("Location",),
            "channel": ("Channel", "Source"),
        },
        required=frozenset({"order_key", "ordered_at", "total"}),
        refund_when={"Event Type": "Refund"},
        link_namespace="square",
        blank_values=frozenset({"None"}),
    ),
    "shopify_customers": Preset(
        stream="customers",
        mapping={
            "customer_key": ("Customer ID",),
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "email": ("Email",),
            "phone": ("Phone", "Default Address Phone"),
            "city": ("Default Address City",),
            "region": ("Default Address Province Code",),
            "country": ("Default Address Country Code",),
            "postal_code": ("Default Address Zip",),
            "tags": ("Tags",),
            "email_consent": ("Accepts Email Marketing", "Accepts Marketing"),
            "sms_consent": ("Accepts SMS Marketing",),
            "birth_date": ("*(customer.metafields.facts.birth_date)",),
        },
        required=frozenset({"customer_key"}),
        attributes={"company": ("Default Address Company",)},
        consent_values=_SHOPIFY_CONSENT,
        link_namespace="shopify",
    ),
    "shopify_orders": Preset(
        stream="orders",
        # The export has no customer id: orders are guest orders keyed by email or phone,
        # which identity resolution joins to the customers export.
        mapping={
            # "Name" (#1001) is on every row of an order; "Id" only on its first row.
            "order_key": ("Name",),
            "name": ("Name",),
            "ordered_at": ("Created at",),
            "email": ("Email",),
            "phone": ("Phone", "Billing Phone"),
            "financial_status": ("Financial Status",),
            "currency": ("Currency",),
            "total": ("Total",),
            "refunded": ("Refunded Amount",),
            "cancelled_at": ("Cancelled at",),
            "location": ("Location",),
            "channel": ("Source",),
            "title": ("Lineitem name",),
            "quantity": ("Lineitem quantity",),
            "price": ("Lineitem price",),
            "sku": ("Lineitem sku",),
            "vendor": ("Vendor",),
        },
        required=frozenset({"order_key", "ordered_at", "total"}),
    ),
}
