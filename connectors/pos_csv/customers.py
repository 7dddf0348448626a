"""Customer records from typed row values: a customers export's rows, or who placed an order."""

from __future__ import annotations

from typing import Any

from segsync.core.records import Customer

from .parse import split_name

#: Customer fields copied as they are from the typed values.
_PLAIN = (
    "email", "phone", "city", "region", "country", "postal_code", "birth_date", "gender",
    "email_consent", "email_consent_at", "sms_consent", "sms_consent_at", "created_at",
    "updated_at",
)


def customer_key(values: dict[str, Any]) -> str | None:
    """A customers export row's key: its id column, else its email, else its phone.

    Email and phone keys are prefixed so they cannot collide with a vendor's ids; identifiers
    stay raw in the record (the store normalises them), only the key is trimmed and folded.
    """
    if key := values.get("customer_key"):
        return key
    if email := values.get("email"):
        return f"email:{email.strip().lower()}"
    if phone := values.get("phone"):
        return f"phone:{phone.strip()}"
    return None


def build_customer(
    key: str,
    values: dict[str, Any],
    attributes: dict[str, str],
    *,
    link_namespace: str | None,
    origin: str,
    raw: dict[str, str],
) -> Customer:
    """A Customer from whatever fields the row has; ``full_name`` fills missing name parts."""
    first, last = values.get("first_name"), values.get("last_name")
    if (not first or not last) and (full := values.get("full_name")):
        split_first, split_last = split_name(full)
        first, last = first or split_first, last or split_last
    id_value = values.get("customer_key")
    return Customer(
        key=key,
        first_name=first,
        last_name=last,
        tags=values.get("tags", []),
        link_id=f"{link_namespace}:{id_value}" if link_namespace and id_value else None,
        attributes=attributes,
        origin=origin,
        raw=raw,
        **{name: values.get(name) for name in _PLAIN},
    )
