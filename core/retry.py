"""The retry policy for calls to external services: bounded, backed off, Retry-After aware.

Only :class:`~segsync.core.errors.RetriableError` is retried: a
:class:`~segsync.core.errors.FatalError` (bad credentials, bad request) fails the same way every
time, and anything else is a bug that must keep its traceback. Waits grow exponentially with
random jitter, so many stores sharing one account do not retry in lock-step; a server's
Retry-After is obeyed as given, because a shorter wait only buys another 429 against per-minute
windows. A Retry-After longer than the policy allows stops retrying at once: the work stays in
the next run's plan instead of holding the run hostage.

The push executor uses it around every batch; HTTP connectors may use it around single requests::

    policy = RetryPolicy(attempts=3)
    response = policy.call(client.send, request)

Tests pass ``sleep`` to record the waits without spending them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import RetriableError

log = logging.getLogger("segsync.retry")

T = TypeVar("T")


def _retry_after(state: tenacity.RetryCallState) -> float | None:
    """The server's Retry-After carried by the attempt's error, if it sent one."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetriableError) and exc.retry_after is not None:
        return max(0.0, float(exc.retry_after))
    return None


class wait_retry_after(wait_base):
    """Wait what the server asked for, or fall back to ``fallback`` when it did not say."""

    def __init__(self, fallback: wait_base):
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        hinted = _retry_after(retry_state)
        return hinted if hinted is not None else self.fallback(retry_state)


class stop_if_retry_after_exceeds(stop_base):
    """Give up when the server asks for a longer pause than the policy will wait."""

    def __init__(self, limit: float):
        self.limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        hinted = _retry_after(retry_state)
        return hinted is not None and hinted > self.limit


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info("attempt %d failed (%s); retrying in %.1fs", state.attempt_number, exc, wait)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    ``attempts`` counts the first call. The n-th retry waits about ``base × 2**n`` seconds plus
    up to ``jitter`` seconds, capped at ``max_wait``; a Retry-After replaces that wait when the
    server sent one and is at most ``max_retry_after``.
    """

    attempts: int = 5
    base: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def retrying(self) -> tenacity.Retrying:
        """A fresh tenacity controller for one logical call (controllers keep per-call state)."""
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.base, max=self.max_wait, jitter=self.jitter
        )
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetriableError),
            wait=wait_retry_after(backoff),
            stop=tenacity.stop_after_attempt(self.attempts)
            | stop_if_retry_after_exceeds(self.max_retry_after),
            sleep=self.sleep,
            before_sleep=_log_retry,
            # The caller sees the service's own error, not tenacity's RetryError wrapper.
            reraise=True,
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under this policy; the last error is re-raised when retries run out."""
        return self.retrying()(fn, *args, **kwargs)


#: A policy that retries at once: for tests, which must not sleep.
NO_WAIT = RetryPolicy(attempts=3, base=0, max_wait=0, jitter=0, sleep=lambda _seconds: None)
