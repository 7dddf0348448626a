"""The person attributes a segment query can use: name, type, and column of ``person_features``.

This catalog is the contract between the features stage (which builds one ``person_features``
row per person, see :mod:`.features`) and the segment language (which type-checks queries
against it, see :mod:`segsync.core.segment`). Names follow Shopify's segment language where
Shopify has the attribute.

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
    # Built-in scores, computed by segsync.core.measure.scores after the features.
    Attribute("recency_score", "integer",
              "RFM R, 1-5 by fifths of buyers (5 = most recent); null without orders"),
    Attribute("frequency_score", "integer",
              "RFM F, 1-5 by fifths of buyers by number_of_orders; null without orders"),
    Attribute("monetary_score", "integer",
              "RFM M, 1-5 by fifths of buyers by amount_spent; null without orders"),
    Attribute("rfm_score", "string", "the three RFM scores written together, such as '545'"),
    Attribute("rfm_group", "enum", "named RFM group from the R x F x M map (core/rfm_map.toml)",
              ("CHAMPIONS", "LOYAL_CUSTOMERS", "POTENTIAL_LOYALISTS", "NEW_CUSTOMERS",
               "PROMISING", "NEED_ATTENTION", "ABOUT_TO_SLEEP", "AT_RISK", "CANT_LOSE_THEM",
               "HIBERNATING", "LOST")),
    Attribute("lifecycle_stage", "enum",
              "the first stage that applies, in the order listed ([scoring] n_*_days, at_risk_k)",
              ("PROSPECT", "NEW", "REACTIVATED", "LOST", "LAPSED", "AT_RISK", "ACTIVE")),
    Attribute("is_fading_regular", "boolean",
              "a regular now well past their usual gap between orders ([scoring] fading_*)"),
    Attribute("usage_tier", "enum",
              "HEAVY / MEDIUM / LIGHT buyer over the last 12 months; null without orders in them",
              ("HEAVY", "MEDIUM", "LIGHT")),
    Attribute("spend_percentile", "float",
              "share of buyers (0-100) who spent strictly less; >= 90 is the top 10 %"),
    Attribute("is_seasonal_buyer", "boolean",
              "bought in a past season window ([scoring] seasonal_*) and orders mostly in it"),
    Attribute("bought_this_time_last_year", "boolean",
              "ordered around the as-of date one year back (by default 14 days either side)"),
    Attribute("birthday_in_days", "integer",
              "days until the next birthday (0 = today), from birth_date ignoring the year"),
    Attribute("first_order_anniversary_in_days", "integer",
              "days until the next anniversary of first_order_date (0 = today)"),
    Attribute("expected_next_order_date", "date",
              "last_order_date plus the mean gap between order dates (two order dates needed)"),
    Attribute("top_category", "string", "the category with the largest share of line amounts"),
    Attribute("top_category_share", "float", "top_category's share of line amounts, 0-1"),
    Attribute("p_alive", "float", "modelled probability (BG/NBD) that the customer is active"),
    Attribute("churn_risk", "float", "1 - p_alive"),
    Attribute("expected_purchases_90d", "float", "modelled purchase days in the next 90 days"),
    Attribute("clv", "float", "modelled discounted value of future purchases"),
    Attribute("predicted_spend_tier", "enum",
              "HIGH (top 30 %), MEDIUM or LOW (bottom 10 %) modelled spend over the next year",
              ("HIGH", "MEDIUM", "LOW")),
)

BY_NAME = {a.name: a for a in ATTRIBUTES}

#: Prefix of custom attributes: ``attributes.loyalty_tier`` reads ``$.loyalty_tier`` of the
#: ``attributes`` JSON column.
CUSTOM_PREFIX = "attributes."
