"""The canonical fields a CSV column can be mapped to, per stream, and how each value is read.

The names are the attribute names of :mod:`segsync.core.records` (``Customer``, ``Order``,
``OrderLine``) plus three helpers that exports need: ``full_name`` (one "Customer Name"
column, split into first and last name), ``ordered_time`` (Square keeps the time of day in its
own column) and ``name`` (the order's display name, such as Shopify's ``#1001``).
"""

from __future__ import annotations

from typing import Literal

#: How a field's text becomes a value; see :mod:`segsync.connectors.pos_csv.rows`.
Kind = Literal[
    "key", "text", "ident", "tags", "date", "datetime", "time", "money", "number", "bool",
    "consent",
]

Stream = Literal["customers", "orders"]

CUSTOMER_FIELDS: dict[str, Kind] = {
    "customer_key": "key",
    "email": "ident",
    "phone": "ident",
    "first_name": "text",
    "last_name": "text",
    "full_name": "text",
    "city": "text",
    "region": "text",
    "country": "text",
    "postal_code": "ident",
    "tags": "tags",
    "birth_date": "date",
    "gender": "text",
    "email_consent": "consent",
    "email_consent_at": "datetime",
    "sms_consent": "consent",
    "sms_consent_at": "datetime",
    "created_at": "datetime",
    "updated_at": "datetime",
}

#: Fields of the order itself; in a one-row-per-line export each is read from the first row
#: of the order that has a value for it.
ORDER_FIELDS: dict[str, Kind] = {
    "order_key": "key",
    "ordered_at": "datetime",
    "ordered_time": "time",
    "total": "money",
    "refunded": "money",
    "currency": "text",
    "cancelled_at": "datetime",
    "test": "bool",
    "financial_status": "text",
    "location": "text",
    "channel": "text",
    "name": "text",
    "updated_at": "datetime",
}

#: Fields of one order line; every row of an order contributes one line.
LINE_FIELDS: dict[str, Kind] = {
    "title": "text",
    "sku": "ident",
    "vendor": "text",
    "category": "text",
    "product_tags": "tags",
    "quantity": "number",
    "price": "money",
    "amount": "money",
}

#: Customer fields an orders file may carry: who placed the order, for the minimal customer
#: record yielded with it (or the guest order's email / phone).
ORDER_CUSTOMER_FIELDS: tuple[str, ...] = (
    "customer_key", "email", "phone", "first_name", "last_name", "full_name",
    "city", "region", "country", "postal_code",
)

ORDERS_STREAM_FIELDS: dict[str, Kind] = {
    **ORDER_FIELDS,
    **LINE_FIELDS,
    **{name: CUSTOMER_FIELDS[name] for name in ORDER_CUSTOMER_FIELDS},
}

#: Kinds whose values may carry Excel's leading ``'`` guard (ids, zips, phones, numbers).
GUARDED_KINDS = frozenset({"key", "ident", "money", "number", "date", "datetime", "time"})


def fields_for(stream: Stream) -> dict[str, Kind]:
    """Every field a column can be mapped to in ``stream``."""
    return CUSTOMER_FIELDS if stream == "customers" else ORDERS_STREAM_FIELDS
