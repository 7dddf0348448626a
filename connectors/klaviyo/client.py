"""HTTP to Klaviyo's JSON:API, and the on-disk ledger of bulk import jobs.

Every request carries the private key, the pinned ``revision`` and JSON:API media types; every
answer goes through :func:`segsync.core.http.raise_for_status`, so a 429 (with Klaviyo's
Retry-After), a 5xx or a dropped connection is a :class:`RetriableError` the engine backs off
and retries, and any other 4xx a :class:`FatalError` carrying its status. Callers that can use
an error body (a 400 naming the record at fault, a 409 naming the existing profile) ask for
those statuses back with ``accept``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from segsync.core import __version__
from segsync.core.http import json_object, make_client, raise_for_status, send

from .config import KlaviyoConfig

JSONAPI = "application/vnd.api+json"


def api_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The ``errors`` array of a JSON:API error document (empty when the body is not one)."""
    errors = (json_object(response) or {}).get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def describe(response: httpx.Response) -> str:
    """One line from an error document: each error's code and detail."""
    errors = api_errors(response)
    if not errors:
        return response.text[:300]
    return "; ".join(
        f"{e.get('code') or e.get('title')}: {e.get('detail') or e.get('title')}" for e in errors
    )


def pointed_indexes(response: httpx.Response, prefix: str) -> dict[int, str]:
    """Record index → message for each error whose ``source.pointer`` is ``prefix/<n>…``.

    Klaviyo points a validation error at the offending element of the request's array; this
    is how one bad profile in a thousand is mapped back to its person.
    """
    pattern = re.compile(re.escape(prefix) + r"/(\d+)(?:/|$)")
    out: dict[int, str] = {}
    for error in api_errors(response):
        match = pattern.match(str((error.get("source") or {}).get("pointer") or ""))
        if match:
            out[int(match.group(1))] = f"{error.get('code')}: {error.get('detail')}"
    return out


def filter_any(field: str, values: Iterable[str]) -> str:
    """``any(field,["a","b"])`` with values quoted as Klaviyo's filter syntax expects."""
    return f"any({field},{json.dumps(list(values), separators=(',', ':'))})"


def filter_equals(field: str, value: str) -> str:
    """``equals(field,"value")``, the value quoted and escaped like a JSON string."""
    return f"equals({field},{json.dumps(value)})"


class KlaviyoClient:
    """One account's API: :meth:`request` for one call, :meth:`pages` to follow a collection."""

    def __init__(self, config: KlaviyoConfig):
        self.http = make_client(
            config.base_url,
            headers={
                "Authorization": f"Klaviyo-API-Key {config.api_key.get_secret_value()}",
                "revision": config.revision,
                "Accept": JSONAPI,
                "User-Agent": f"segsync/{__version__}",
            },
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            # One connection per batch in flight, plus the engine's own (target lookups).
            max_connections=config.max_concurrency + 1,
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; a status in ``accept`` is returned for the caller to read,
        any other failure raised as the engine's error."""
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = JSONAPI
        request = self.http.build_request(method, url, params=params, content=content,
                                          headers=headers)
        response = send(self.http, request)
        if response.status_code in accept:
            return response
        return raise_for_status(response, describe=describe)

    def get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", url, params=params).json()

    def pages(self, url: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of a collection, following ``links.next`` (Klaviyo's cursor)."""
        page: str | None = url
        while page is not None:
            document = self.get(page, params)
            yield from document.get("data") or []
            # The next link already carries every query parameter, the cursor included.
            page, params = (document.get("links") or {}).get("next"), None
