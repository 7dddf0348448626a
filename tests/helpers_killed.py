"""Kill the process mid-push, for the tests that a killed run converges on the next one."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from unittest import mock

import httpx


class Killed(BaseException):
    """The process died: not an error any layer of segsync may catch and handle."""


@contextlib.contextmanager
def killed_after(n: int) -> Iterator[None]:
    """Let ``n`` HTTP calls reach the servers, then die as the n-th answer comes back.

    Patched at httpx's transport, under every client: the n-th request is fully handled by
    the fake (whatever it wrote stays written) but its answer is lost, and no later request
    leaves the process, as when a cron job is killed mid-push. A call another thread already
    had in flight may still land, as it would on a real machine.
    """
    real = httpx.HTTPTransport.handle_request
    counter = itertools.count(1)
    lock = threading.Lock()
    dead = threading.Event()

    def handle(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        with lock:
            if dead.is_set():
                raise Killed("no request leaves a dead process")
            number = next(counter)
        response = real(self, request)
        if number >= n:
            response.close()
            dead.set()
            raise Killed(f"killed after HTTP call {number}")
        return response

    with mock.patch.object(httpx.HTTPTransport, "handle_request", handle):
        yield
