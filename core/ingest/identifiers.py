"""Identifier normalisation: one spelling per email address and per phone number.

Emails are trimmed, lower-cased and syntax-checked with email-validator (no DNS: a pull must
work offline and a mail server's mood is not identity). Phones are parsed to E.164 with
phonenumbers in the store's default region. An invalid value comes back as ``(None, reason)``:
the writer keeps it raw on its record with the reason, and it is never used to link or to sync.
"""

from __future__ import annotations

import functools
import unicodedata

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, EmailSyntaxError
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from email_validator.syntax import (
    split_email,
    validate_email_domain_name,
    validate_email_length,
    validate_email_local_part,
)
from email_validator.types import ValidatedEmail
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

#: What the normalisers' results depend on: a cached result (``identifier_norms``, see
#: :mod:`.normcache`) is only reused while these versions are installed.
VERSIONS = (f"email-validator {email_validator.__version__}; "
            f"phonenumbers {phonenumbers.__version__}")


@functools.lru_cache(maxsize=4096)
def _domain(domain_part: str) -> tuple[dict[str, str] | None, EmailNotValidError | None]:
    """The library's own domain check, once per distinct domain: its IDNA work is most of the
    cost of validating an address, and an export has a handful of domains for 100k people."""
    try:
        return validate_email_domain_name(
            domain_part, test_environment=email_validator.TEST_ENVIRONMENT,
            globally_deliverable=email_validator.GLOBALLY_DELIVERABLE), None
    except EmailNotValidError as exc:
        return None, exc


def validated_address(email: str) -> str:
    """``validate_email(email, check_deliverability=False).normalized``, the domain half
    memoised; raises the same :class:`EmailSyntaxError` (same text) the library would.

    The steps and their order are the library's (``email_validator.validate_email``) with its
    module defaults: display names, quoted local parts and domain literals are refused.
    """
    display_name, original_local, unescaped_local, quoted, domain_part = split_email(email)
    info = validate_email_local_part(unescaped_local, allow_smtputf8=email_validator.ALLOW_SMTPUTF8,
                                     allow_empty_local=email_validator.ALLOW_EMPTY_LOCAL,
                                     quoted_local_part=quoted, strict=email_validator.STRICT)
    smtputf8 = info["smtputf8"]
    normalized_local = unicodedata.normalize("NFC", unescaped_local)
    if normalized_local != unescaped_local:
        try:
            info = validate_email_local_part(
                normalized_local, allow_smtputf8=email_validator.ALLOW_SMTPUTF8,
                allow_empty_local=email_validator.ALLOW_EMPTY_LOCAL, quoted_local_part=quoted,
                strict=email_validator.STRICT)
        except EmailSyntaxError as exc:
            raise EmailSyntaxError("After Unicode normalization: " + str(exc)) from exc
    local, ascii_local = info["local_part"], info["ascii_local_part"]
    if quoted and not email_validator.ALLOW_QUOTED_LOCAL:
        raise EmailSyntaxError("Quoting the part before the @-sign is not allowed here.")
    if (ascii_local is not None and ascii_local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES
            and local is not None):
        ascii_local, local = ascii_local.lower(), local.lower()
    if len(domain_part) == 0:
        raise EmailSyntaxError("There must be something after the @-sign.")
    if domain_part.startswith("[") and domain_part.endswith("]"):
        # Domain literals are rare and refused by default: the library's own path says why.
        return email_validator.validate_email(email, check_deliverability=False).normalized
    domain, error = _domain(domain_part)
    if error is not None:
        raise type(error)(str(error))
    assert domain is not None
    ret = ValidatedEmail()
    ret.original = original_local + "@" + domain_part
    ret.smtputf8 = smtputf8
    ret.local_part, ret.ascii_local_part = local, ascii_local
    ret.domain, ret.ascii_domain = domain["domain"], domain["ascii_domain"]
    ret.normalized = local + "@" + ret.domain
    ret.ascii_email = (ascii_local + "@" + ret.ascii_domain
                       if ascii_local and ret.ascii_domain else None)
    validate_email_length(ret)
    if display_name is not None and not email_validator.ALLOW_DISPLAY_NAME:
        raise EmailSyntaxError("A display name and angle brackets around the email address are "
                               "not permitted here.")
    return ret.normalized


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
        normalized = validated_address(value)
    except email_validator.EmailNotValidError as exc:
        return None, f"invalid email: {exc}"
    # Mailboxes are case-insensitive in practice and Mailchimp keys members by the md5 of the
    # lower-cased address; keeping case would split one person into two.
    return normalized.lower(), None


@functools.lru_cache(maxsize=64)
def _first_of_its_code(region: str) -> bool:
    """Whether ``region`` is the first region of its calling code and matches numbers by their
    patterns alone (no leading-digits rule): the region ``region_code_for_number`` then tries
    first (the US for +1)."""
    code = phonenumbers.country_code_for_region(region)
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return bool(regions) and regions[0] == region and metadata is not None and (
        metadata.leading_digits is None)


def is_valid_number(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """``phonenumbers.is_valid_number(number)``, without its search for the number's region
    when the default region already validates it.

    ``is_valid_number`` is ``is_valid_number_for_region(number, region_code_for_number(number))``
    and ``region_code_for_number`` returns the first region of the calling code whose patterns
    match; when that first region is ``region`` and the number is valid for it, the answer is
    True either way. Anything else takes the library's own path.
    """
    if _first_of_its_code(region) and phonenumbers.is_valid_number_for_region(number, region):
        return True
    return phonenumbers.is_valid_number(number)


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
    if not is_valid_number(number, region):
        return None, f"invalid phone: {value!r} is not a valid number (default region {region})"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
