"""HTTP to the Mailchimp Marketing API v3: one method per endpoint segsync uses.

Every call goes through :func:`segsync.core.http.send` and
:func:`~segsync.core.http.raise_for_status`, so failures land in the engine's two buckets:
429, 5xx, timeouts, dropped connections and Mailchimp's bodiless 403 (its throttle "at
exceptionally high volumes") are :class:`RetriableError`; everything else is a
:class:`FatalError` carrying the status, with the problem document's title and detail as the
message. The client itself does not retry: every write is a whole batch, and the push engine
re-sends whole batches, so no call is retried at two levels at once.

``httpx.Client`` is thread-safe, and its pool is capped at the configured concurrency, so
however many threads share one client, no more than that many requests are open at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from segsync.core import __version__
from segsync.core.errors import RetriableError
from segsync.core.http import json_object, make_client, raise_for_status, send

from .config import MailchimpConfig

#: Mailchimp's largest page (``count``), and its cap on batch subscribe and segment arrays.
PAGE_SIZE = 1000
BATCH_LIMIT = 500


def describe_problem(response: httpx.Response) -> str:
    """One line from a problem+json error: title, detail and any per-field messages."""
    body = json_object(response)
    if body is None:
        return response.text[:300]
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    fields = "; ".join(f"{e.get('field') or '?'}: {e.get('message')}"
                       for e in body.get("errors") or [] if isinstance(e, dict))
    if fields:
        parts.append(f"({fields})")
    return " ".join(parts) or response.text[:300]


def is_bodiless_throttle(response: httpx.Response) -> bool:
    """Mailchimp's high-volume throttle: a 403 with no body, unlike a real permission 403."""
    return response.status_code == 403 and not response.content.strip()


class MailchimpClient:
    """One API key's connection to one data centre."""

    def __init__(self, config: MailchimpConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.http = make_client(
            config.endpoint,
            # Mailchimp ignores the user name of HTTP Basic; the key is the password.
            auth=httpx.BasicAuth("segsync", config.api_key.get_secret_value().strip()),
            headers={"User-Agent": f"segsync/{__version__}"},
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            transport=transport,
            max_connections=config.max_concurrency,
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, json: Any = None,
             params: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded body (None for 204)."""
        request = self.http.build_request(method, path, json=json, params=params)
        response = raise_for_status(send(self.http, request), describe=describe_problem,
                                    throttled=is_bodiless_throttle)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            # A body cut short by a dropped connection: the call may or may not have landed.
            raise RetriableError(f"{method} {path}: unreadable response ({exc})") from exc

    def pages(self, path: str, key: str, params: dict[str, Any] | None = None,
              fields: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated collection, ``count=1000`` at a time."""
        offset = 0
        while True:
            query = {**(params or {}), "count": PAGE_SIZE, "offset": offset}
            if fields:
                # A member object is kilobytes of stats and links; ask only for what is read.
                query["fields"] = f"{fields},total_items"
            page = self.call("GET", path, params=query) or {}
            items = page.get(key) or []
            yield from items
            offset += len(items)
            # total_items is re-read on every page: the collection may change while paging.
            if not items or offset >= int(page.get("total_items", 0)):
                return

    # -- endpoints ----------------------------------------------------------------------------

    def ping(self) -> str:
        return str((self.call("GET", "/ping") or {}).get("health_status", ""))

    def audience(self, list_id: str) -> dict[str, Any]:
        return self.call("GET", f"/lists/{list_id}", params={"fields": "id,name,stats"})

    def audiences(self) -> Iterator[dict[str, Any]]:
        return self.pages("/lists", "lists", fields="lists.id,lists.name")

    def tags(self, list_id: str) -> Iterator[dict[str, Any]]:
        """Every tag (static segment) of an audience."""
        return self.pages(f"/lists/{list_id}/segments", "segments", {"type": "static"},
                          fields="segments.id,segments.name,segments.type")

    def create_tag(self, list_id: str, name: str) -> dict[str, Any]:
        """Create an empty tag. Not idempotent: callers look the name up first."""
        return self.call("POST", f"/lists/{list_id}/segments",
                         json={"name": name, "static_segment": []})

    def batch_subscribe(self, list_id: str, members: list[dict[str, Any]]) -> dict[str, Any]:
        """Upsert up to 500 contacts; per-contact refusals come back in ``errors``.

        ``update_existing`` makes a replay converge; existing contacts keep their status
        because the members carry only ``status_if_new``. A member's ``tags`` are added to
        new and existing contacts alike, and never replace their other tags (no
        ``sync_tags``).
        """
        params = {"skip_merge_validation": "true"} if self.config.skip_merge_validation else None
        return self.call("POST", f"/lists/{list_id}", params=params,
                         json={"members": members, "update_existing": True}) or {}

    def segment_batch(self, list_id: str, segment_id: str, remove: list[str]) -> dict[str, Any]:
        """Remove up to 500 emails from a static segment in one call."""
        return self.call("POST", f"/lists/{list_id}/segments/{segment_id}",
                         json={"members_to_remove": remove}) or {}

    def member_emails(self, list_id: str, status: str) -> Iterator[str]:
        """The addresses of an audience's contacts with ``status``, lower-cased."""
        for member in self.pages(f"/lists/{list_id}/members", "members", {"status": status},
                                 fields="members.email_address"):
            yield str(member["email_address"]).strip().lower()

    def segment_emails(self, list_id: str, segment_id: str) -> Iterator[str]:
        """The addresses of a segment's members, lower-cased like segsync's keys."""
        for member in self.pages(f"/lists/{list_id}/segments/{segment_id}/members", "members",
                                 fields="members.email_address"):
            yield str(member["email_address"]).strip().lower()
