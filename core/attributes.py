"""The person attributes a segment query can use: name, type, and column of ``person_features``.

This catalog is the contract between the features stage (which builds one ``person_features``
row per person, see :mod:`segsync.core.features`) and the segment language (which type-checks
queries against it, see :mod:`segsync.core.query_parser` and :mod:`segsync.core.query_compiler`). Names follow Shopify's segment language
where Shopify has the attribute.

Storage conventions in ``person_features``: dates are ``YYYY-MM-DD`` text in the store's time
zone; lists are JSON arrays of strings; enums are upper-case text; ``attributes`` is a JSON
object of custom attributes mapped from sources (queried as ``attributes.NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AttrType = Literal["integer", "float", "date", "string", "enum", "list", "boolean"]

CONSENT_ENUM = ("SUBSCRIBED", "NOT_SUBSCRIBED", "PENDING", "UNSUBSCRIBED", "INVALID", "REDACTED")


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttrType
    description: str
    #: Permitted values of an enum.
    values: tuple[str, ...] = ()
    #: Column in ``person_features``; defaults to ``name``.
    column: str | None = None

    @property
    def sql_column(self) -> str:
        return self.column or self.name


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("person_id", "integer", "segsync's stable person id"),
    Attribute("email", "string", "normalised email, or null when missing or invalid"),
    Attribute("email_domain", "string", "the part of the email after @"),
    Attribute("phone", "string", "phone in E.164, or null when missing or invalid"),
    Attribute("first_name", "string", "first name from the most recent record"),
    Attribute("last_name", "string", "last name from the most recent record"),
    Attribute("email_subscription_status", "enum", "merged email marketing consent",
              CONSENT_ENUM),
    Attribute("sms_subscription_status", "enum", "merged SMS marketing consent", CONSENT_ENUM),
    Attribute("customer_added_date", "date", "earliest creation date over the person's records"),
    Attribute("number_of_orders", "integer",
              "orders as of the as-of date, excluding cancelled, test and refund-only rows"),
    Attribute("amount_spent", "float",
              "total spent net of refunds, excluding cancelled and test orders"),
    Attribute("average_order_value", "float", "amount_spent / number_of_orders (null if none)"),
    Attribute("first_order_date", "date", "date of the first order"),
    Attribute("last_order_date", "date", "date of the latest order"),
    Attribute("days_since_last_order", "integer", "whole days from last_order_date to as-of"),
    Attribute("median_order_gap_days", "float",
              "median days between consecutive order dates (null under two order dates)"),
    Attribute("orders_last_30d", "integer", "orders in the 30 days up to as-of"),
    Attribute("orders_last_90d", "integer", "orders in the 90 days up to as-of"),
    Attribute("orders_last_365d", "integer", "orders in the 365 days up to as-of"),
    Attribute("spent_last_30d", "float", "net spend in the 30 days up to as-of"),
    Attribute("spent_last_90d", "float", "net spend in the 90 days up to as-of"),
    Attribute("spent_last_365d", "float", "net spend in the 365 days up to as-of"),
    Attribute("customer_tags", "list", "tags from every record of the person"),
    Attribute("product_categories", "list", "categories / product types bought"),
    Attribute("product_vendors", "list", "vendors bought from"),
    Attribute("product_skus", "list", "SKUs bought"),
    Attribute("product_tags", "list", "product tags of items bought"),
    Attribute("locations", "list", "stores / retail locations the person bought at"),
    Attribute("sources", "list", "names of the sources the person came from"),
    Attribute("city", "string", "city of the most recent address"),
    Attribute("region", "string", "region / province / state code"),
    Attribute("country", "string", "ISO country code"),
    Attribute("postal_code", "string", "postal / ZIP code"),
    Attribute("birth_date", "date", "date of birth where a source provides it"),
    Attribute("age", "integer", "whole years from birth_date to as-of"),
    Attribute("gender", "string", "gender as a source provides it (never inferred)"),
)

BY_NAME = {a.name: a for a in ATTRIBUTES}

#: Prefix of custom attributes: ``attributes.loyalty_tier`` reads ``$.loyalty_tier`` of the
#: ``attributes`` JSON column.
CUSTOM_PREFIX = "attributes."
