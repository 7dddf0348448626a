"""HTTP to SimpleTexting's API v2, and the on-disk ledger of batch-update tasks.

Every answer goes through :func:`segsync.core.http.raise_for_status`: a 429, a 5xx or a dropped
connection is a :class:`RetriableError` the engine backs off and retries (SimpleTexting
documents no rate-limit headers, so nothing here waits on one), any other 4xx a
:class:`FatalError` carrying its status. Callers that treat a status as an answer (a 404 for
a contact that is not in the list) ask for it back with ``accept``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from segsync.core import __version__
from segsync.core.http import json_object, make_client, raise_for_status, send

from .config import SimpleTextingConfig

#: Largest page SimpleTexting serves for lists and contacts.
PAGE_SIZE = 500


def describe(response: httpx.Response) -> str:
    """One line from SimpleTexting's error envelope: its errorCode and message."""
    body = json_object(response)
    if body is None:
        return response.text[:300]
    details = "; ".join(str(d) for d in body.get("errorDetails") or [])
    parts = [str(body.get("errorCode") or body.get("status") or ""),
             str(body.get("message") or ""), details]
    return ": ".join(part for part in parts if part)


class SimpleTextingClient:
    """One account's API: :meth:`request` for one call, :meth:`pages` for a paged list."""

    def __init__(self, config: SimpleTextingConfig):
        self.http = make_client(
            config.base_url,
            headers={
                "Authorization": f"Bearer {config.api_token.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"segsync/{__version__}",
            },
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            max_connections=config.max_concurrency + 1,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, accept: tuple[int, ...] = ()) -> httpx.Response:
        """Send one request to ``path`` (below the base URL); a status in ``accept`` is
        returned for the caller to read, any other failure raised as the engine's error."""
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = self.http.build_request(method, path, params=params, content=content,
                                          headers=headers)
        response = send(self.http, request)
        if response.status_code in accept:
            return response
        return raise_for_status(response, describe=describe)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged collection (``page`` from 0, ``size`` ≤ 500)."""
        page = 0
        while True:
            document = self.get(path, {"page": page, "size": PAGE_SIZE})
            yield from document.get("content") or []
            page += 1
            if page >= int(document.get("totalPages") or 0):
                return
