"""The faster identifier checks answer exactly what email-validator and phonenumbers answer.

``validated_address`` re-composes ``validate_email`` from the library's own steps so the
domain half runs once per distinct domain; any drift from the library (an order of checks, a
default) would change which addresses link people, so it is compared on generated addresses
that mix valid, odd and broken local parts and domains.
"""

from __future__ import annotations

import email_validator
import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st

from segsync.core.ingest.identifiers import is_valid_number, normalise_email, validated_address

_LOCAL = st.text(alphabet=st.sampled_from(list("abcXYZ09._+-!#\"' \\()<>,;:@é\u0301ü\u037e")),
                 min_size=0, max_size=12)
_DOMAIN = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.org", "bücher.de", "xn--bcher-kva.de", "a", "",
                     "localhost", "x.test", "ex ample.com", "-x.com", "a..b.com", "[1.2.3.4]",
                     "[IPv6:::1]", "x" * 70 + ".com", ("y" * 60 + ".") * 5 + "com", "ex_ample.com",
                     "example.invalid", "123.com", "ー.jp"]),
    st.text(alphabet=st.sampled_from(list("abc.-_é0xn[]")), max_size=12),
)


def _library(address: str) -> str:
    try:
        return email_validator.validate_email(address, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        return f"error: {type(exc).__name__}: {exc}"


def _memoised(address: str) -> str:
    try:
        return validated_address(address)
    except email_validator.EmailNotValidError as exc:
        return f"error: {type(exc).__name__}: {exc}"


@settings(max_examples=600, deadline=None)
@given(local=_LOCAL, domain=_DOMAIN, display=st.sampled_from(["", "Ann <", "\"A\" <"]))
@example(local="postmaster", domain="EXAMPLE.com", display="")
@example(local="a" * 65, domain="example.com", display="")
@example(local="e\u0301", domain="example.com", display="")
@example(local="ok", domain="[1.2.3.4]", display="")
def test_memoised_validation_equals_the_library(local: str, domain: str, display: str):
    address = f"{display}{local}@{domain}{'>' if display else ''}"
    assert _memoised(address) == _library(address)
    # Twice: the second answer comes from the domain memo.
    assert _memoised(address) == _library(address)


@given(st.text(max_size=30))
def test_any_text_gets_the_library_answer(text: str):
    assert _memoised(text) == _library(text)


def test_normalise_email_lower_cases_the_library_form():
    assert normalise_email("  Ann.Lee@Example.COM ") == ("ann.lee@example.com", None)
    assert normalise_email("ann@localhost")[1] == (
        "invalid email: " + _library("ann@localhost").split(": ", 2)[2])


_DIGITS = st.text(alphabet=st.sampled_from(list("0123456789")), min_size=6, max_size=12)


@settings(max_examples=800, deadline=None)
@given(digits=_DIGITS, prefix=st.sampled_from(["", "+1", "+44", "+49 ", "1-", "0", "(212) ",
                                               "+1 604 ", "+1 876 ", "+44 1624 "]),
       region=st.sampled_from(["US", "CA", "GB", "DE", "JM", "IM", "FR", "AU"]))
@example(digits="5550101", prefix="(415) ", region="US")
@example(digits="5550101", prefix="+1 604 ", region="US")
@example(digits="456789", prefix="+44 1624 ", region="GB")
def test_the_phone_shortcut_answers_what_the_library_answers(digits, prefix, region):
    try:
        number = phonenumbers.parse(prefix + digits, region)
    except phonenumbers.NumberParseException:
        return
    assert is_valid_number(number, region) == phonenumbers.is_valid_number(number)
