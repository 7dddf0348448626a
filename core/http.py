"""HTTP for connectors: one httpx client factory and one way to read an error response.

Connectors call :func:`raise_for_status` on every response so that every service's failures
land in the same two buckets the engine understands: :class:`RetriableError` (429, 5xx,
timeouts, connection errors; with the server's Retry-After) and :class:`FatalError` (the rest
of 4xx, with the HTTP status so a 400 can be split down to the record that caused it). Retries
themselves are :class:`segsync.core.retry.RetryPolicy`'s job.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Mapping

import httpx

from .errors import FatalError, RetriableError

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    max_connections: int = 10,
) -> httpx.Client:
    """A client for one service account: base URL, auth, timeouts and a connection cap.

    ``transport`` lets tests inject ``httpx.MockTransport``; ``max_connections`` is the
    account's concurrency limit (Mailchimp allows 10 simultaneous connections per key).
    """
    return httpx.Client(
        base_url=base_url,
        headers=dict(headers or {}),
        auth=auth,
        timeout=timeout,
        transport=transport,
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After as seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def json_object(response: httpx.Response) -> dict | None:
    """The body as a JSON object, or None when it is not JSON or not an object: error bodies
    are often HTML pages or empty when a proxy or a throttle answers instead of the API."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def raise_for_status(
    response: httpx.Response,
    *,
    describe: Callable[[httpx.Response], str] | None = None,
    throttled: Callable[[httpx.Response], bool] | None = None,
) -> httpx.Response:
    """Return a successful response; raise the engine's error for a failed one.

    ``describe`` turns an error body into a message (each service has its own error format);
    ``throttled`` recognises service-specific throttling that is not a 429 (Mailchimp's bodiless
    403).
    """
    if response.is_success:
        return response
    message = f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}"
    detail = describe(response) if describe else response.text[:300]
    if detail:
        message = f"{message}: {detail}"
    status = response.status_code
    if status == 429 or status >= 500 or (throttled is not None and throttled(response)):
        raise RetriableError(message, retry_after=retry_after(response))
    raise FatalError(message, status=status)


def send(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send a request, turning transport failures (timeouts, resets) into RetriableError."""
    try:
        return client.send(request)
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{request.method} {request.url.path}: timed out ({exc})") from exc
    except httpx.TransportError as exc:
        raise RetriableError(f"{request.method} {request.url.path}: {exc}") from exc
