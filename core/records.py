"""Canonical records: what every source yields and what the store keeps.

Sources translate their own shapes into these dataclasses; nothing downstream of a source knows
where a record came from except through ``source``. Identifiers are kept raw here; the store
normalises them (see :mod:`segsync.core.ingest.identifiers`) so every source gets the same rules.

Datetimes are timezone-aware or naive; a naive one is read in the store's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

#: Canonical marketing-consent states, shared by email and SMS. ``None`` means "not known".
CONSENT_STATES = (
    "subscribed",
    "not_subscribed",
    "pending",
    "unsubscribed",
    "cleaned",
    "redacted",
)
#: States that mean "do not market to this person", whatever any other record says.
OPT_OUT_STATES = frozenset({"unsubscribed", "cleaned", "redacted"})

Consent = Literal["subscribed", "not_subscribed", "pending", "unsubscribed", "cleaned", "redacted"]


@dataclass
class Customer:
    """One customer as one source knows them. ``key`` is unique within the source."""

    key: str
    email: str | None = None
    phone: str | None = None
    #: An id shared with other sources' records of the same person, namespaced by the system
    #: that issued it (``square:CUST123`` in both Square's directory and its items export).
    #: Records with equal ``link_id`` are one person, like records sharing an email.
    link_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    postal_code: str | None = None
    tags: list[str] = field(default_factory=list)
    birth_date: dt.date | None = None
    gender: str | None = None
    email_consent: Consent | None = None
    email_consent_at: dt.datetime | None = None
    sms_consent: Consent | None = None
    sms_consent_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Where the record came from, for error messages and the raw table ("orders.csv:12").
    origin: str | None = None
    raw: dict[str, Any] | None = None


@dataclass
class OrderLine:
    """One line of an order. ``amount`` is the line total in shop currency."""

    key: str
    title: str | None = None
    sku: str | None = None
    vendor: str | None = None
    category: str | None = None
    product_tags: list[str] = field(default_factory=list)
    quantity: float = 1
    price: float | None = None
    amount: float | None = None


@dataclass
class Order:
    """One order (or refund, with a negative ``total``).

    ``customer_key`` links to a :class:`Customer` of the same source. A guest order has none
    and carries ``email`` / ``phone`` instead; the store then makes a guest customer for it.
    """

    key: str
    ordered_at: dt.datetime
    total: float
    customer_key: str | None = None
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    currency: str | None = None
    refunded: float = 0.0
    cancelled_at: dt.datetime | None = None
    test: bool = False
    financial_status: str | None = None
    location: str | None = None
    channel: str | None = None
    updated_at: dt.datetime | None = None
    lines: list[OrderLine] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    raw: dict[str, Any] | None = None


@dataclass
class Rejected:
    """A row a source could not turn into a record, kept with its reason.

    ``whole_file`` marks the refusal of an entire file (a required column is missing): nothing
    of it was imported, and the pull reports the file as an error rather than a bad row.
    """

    stream: str
    origin: str
    reason: str
    line: int | None = None
    field: str | None = None
    raw: dict[str, Any] | str | None = None
    whole_file: bool = False


@dataclass
class Cursor:
    """A source's new position in one stream, stored once every record before it is written."""

    stream: str
    value: str


@dataclass
class FileSeen:
    """A source finished a file with this content hash, or skipped it as already imported.

    A file is reported only once every row of it was yielded (so a crash mid-file re-reads the
    file next time). ``skipped`` marks a file whose hash was in ``PullState.seen_files``.
    """

    path: str
    sha256: str
    rows: int = 0
    rejected: int = 0
    skipped: bool = False


@dataclass
class StagedFile:
    """A source's offer to write a whole file set-wise instead of record by record.

    The optional bulk capability of a source (see :class:`~segsync.core.connector.Source`):
    ``load`` fills the store's staging table (:class:`~segsync.core.ingest.staged.StagedStore`,
    one typed row per order row) and returns the file's :class:`FileSeen`, or None to decline
    (a shape the staged path does not cover). The writer runs it when the record arrives and
    sets ``result``; a source whose offer was declined, or not taken up (a consumer of
    :meth:`pull` that is not the store), yields the file's records as usual.
    """

    path: str
    #: Called with the store's ``StagedStore`` (base modules do not import the ingest stage).
    load: Callable[[Any], FileSeen | None]
    result: FileSeen | None = None


Record = Customer | Order | Rejected | Cursor | FileSeen | StagedFile
