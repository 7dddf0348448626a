"""The ``[sources.NAME]`` table of a ``shopify`` source: which shop, which token, how to pull."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from segsync.core.connector import ConnectorConfig

#: The oldest API version whose Order has ``retailLocation`` and ``sourceName`` (2024-07).
OLDEST_VERSION = "2024-07"
_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def version_at_least(version: str, floor: str) -> bool:
    """Whether ``version`` (``YYYY-MM`` or ``unstable``) includes what ``floor`` introduced.

    ``YYYY-MM`` names sort as strings; ``unstable`` is ahead of every release.
    """
    return version == "unstable" or version >= floor


class ShopifyConfig(ConnectorConfig):
    """Customers, orders and abandoned checkouts from one Shopify shop's Admin GraphQL API."""

    #: The shop's ``*.myshopify.com`` name: ``my-store`` or ``my-store.myshopify.com``.
    shop: str
    #: An Admin API access token (``shpat_…``) of a custom app installed on the shop. Keep it
    #: out of the file with ``SEGSYNC_SOURCES__<NAME>__ACCESS_TOKEN``.
    access_token: SecretStr
    #: Admin API version, ``YYYY-MM`` (``2024-07`` or later) or ``unstable``.
    api_version: str = "2025-07"
    #: Talk to this URL instead of ``https://<shop>.myshopify.com`` (a proxy, or a test fake).
    base_url: str | None = None
    #: Records per page when paging (Shopify allows at most 250). Order pages shrink on their
    #: own when Shopify says a page would cost more than a single query may.
    page_size: int = Field(100, ge=1, le=250)
    #: Line items read with each order page; an order with more gets the rest on its own.
    line_items_per_order: int = Field(5, ge=1, le=250)
    #: ``auto``: a bulk operation for the first pull and for any pull of at least
    #: ``bulk_threshold`` records, pages otherwise; ``always`` or ``never`` force one way.
    bulk: Literal["auto", "always", "never"] = "auto"
    bulk_threshold: int = Field(5000, ge=1)
    #: Seconds between polls of a running bulk operation.
    bulk_poll_interval: float = Field(5.0, gt=0)
    #: Seconds to wait for a bulk operation before giving up for this pull; the next pull picks
    #: the same operation up again.
    bulk_timeout: float = Field(4 * 3600.0, gt=0)
    #: Seconds re-read before the stored cursor: ``updated_at`` ties and Shopify's search index
    #: lag must not lose a record, and re-reading is harmless (records upsert by id).
    overlap_seconds: float = Field(300.0, ge=0)
    #: Seconds to wait for a response, and for a connection.
    timeout: float = Field(60.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    #: Attempts (including the first) for a request that fails with 5xx or a network error.
    max_retries: int = Field(5, ge=1)
    #: Seconds one request may stay throttled before the pull gives up (a safety valve: a
    #: throttled request normally waits only until the cost bucket has refilled).
    throttle_patience: float = Field(1800.0, gt=0)
    #: Pull abandoned checkouts when the token may read them (skipped with a note otherwise).
    checkouts: bool = True

    @field_validator("shop")
    @classmethod
    def _shop_name(cls, value: str) -> str:
        name = value.strip().lower().removeprefix("https://").rstrip("/")
        name = name.removesuffix(".myshopify.com")
        if not _SHOP.match(name):
            raise ValueError(f"{value!r} is not a shop name (use 'my-store' or "
                             "'my-store.myshopify.com')")
        return name

    @field_validator("api_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value != "unstable" and not _VERSION.match(value):
            raise ValueError(f"{value!r} is not an API version (use YYYY-MM with a quarterly "
                             "month such as '2025-07', or 'unstable')")
        if not version_at_least(value, OLDEST_VERSION):
            raise ValueError(f"API version {value} is too old: segsync needs {OLDEST_VERSION} "
                             "or later (for an order's retailLocation and sourceName)")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/") if value else value

    @property
    def domain(self) -> str:
        return f"{self.shop}.myshopify.com"

    @property
    def endpoint(self) -> str:
        """Scheme and host the GraphQL path is appended to."""
        return self.base_url or f"https://{self.domain}"
