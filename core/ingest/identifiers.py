"""Identifier normalisation: one spelling per email address and per phone number.

Emails are trimmed, lower-cased and syntax-checked with email-validator (no DNS: a pull must
work offline and a mail server's mood is not identity). Phones are parsed to E.164 with
phonenumbers in the store's default region. An invalid value comes back as ``(None, reason)``:
the writer keeps it raw on its record with the reason, and it is never used to link or to sync.
"""

from __future__ import annotations

import functools

import email_validator
import phonenumbers


@functools.lru_cache(maxsize=200_000)
def normalise_email(raw: str | None) -> tuple[str | None, str | None]:
    """Return ``(email, None)`` for a usable address or ``(None, reason)``.

    Cached because orders exports repeat the same customer's address on every row.
    """
    if raw is None:
        return None, None
    value = raw.strip().strip("'\"<>").strip()
    if not value:
        return None, None
    try:
        result = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return None, f"invalid email: {exc}"
    # Mailboxes are case-insensitive in practice and Mailchimp keys members by the md5 of the
    # lower-cased address; keeping case would split one person into two.
    return result.normalized.lower(), None


@functools.lru_cache(maxsize=200_000)
def normalise_phone(raw: str | None, region: str) -> tuple[str | None, str | None]:
    """Return ``(E.164, None)`` for a valid number or ``(None, reason)``."""
    if raw is None:
        return None, None
    # Exports guard phones against Excel with a leading apostrophe.
    value = raw.strip().lstrip("'").strip()
    if not value:
        return None, None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"invalid phone: {exc}"
    if not phonenumbers.is_valid_number(number):
        return None, f"invalid phone: {value!r} is not a valid number (default region {region})"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
