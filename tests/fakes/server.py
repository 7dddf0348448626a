"""The loopback HTTP scaffolding the vendor fakes share.

* :class:`LoopbackServer`: a ``ThreadingHTTPServer`` on ``127.0.0.1`` (a free port), serving
  from a daemon thread, with its handler class bound to the fake (``Handler.fake``).
* :class:`Served`: the ``with fake:`` lifecycle on top of it.
* :class:`QuietHandler`: HTTP/1.1 keep-alive, Nagle off, no request logging.
* :class:`JsonHandler`: serves ``fake.handle(method, target, headers, raw)`` answers as JSON.
* :class:`Fault`, :class:`Logged` and :class:`ScriptedFaults`: the request log and the
  scripted failures of the Klaviyo and SimpleTexting fakes (matched by request number or by
  method and path).

Each fake keeps its own routes, strictness and error envelopes; only the plumbing is here.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

#: ``(status, JSON payload or None, extra headers)``; status 0 drops the connection unanswered.
Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


class LoopbackServer:
    """Serve ``handler`` (bound to ``fake`` as ``Handler.fake``) on a free loopback port."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], fake: Any, *,
                 server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
                 name: str | None = None):
        bound = type("Handler", (handler,), {"fake": fake})
        self.httpd = server_class(("127.0.0.1", 0), bound)
        self.httpd.daemon_threads = True
        # A short poll keeps shutdown quick: tests start a fresh fake per scenario.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True, name=name).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Served:
    """Mixin for a fake served by ``with fake:``; ``url`` is then its base URL plus
    ``url_path``. The fake's class sets ``handler``, the request handler bound to it."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    url_path: ClassVar[str] = ""
    _server: LoopbackServer | None = None
    url = ""

    def __enter__(self) -> Self:
        self._server = LoopbackServer(self.handler, self)
        self.url = self._server.url + self.url_path
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive, Nagle off (each answer would otherwise wait ~40 ms for an ACK), quiet."""

    fake: Any
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output stays readable."""


class JsonHandler(QuietHandler):
    """Hands each request to ``fake.handle`` and writes its :data:`Answer` as JSON.

    Subclasses choose the methods they serve (``do_GET = do_POST = JsonHandler.serve``); any
    other method gets the standard library's 501.
    """

    #: Content types of answers with a body, below 400 and from 400 on.
    content_type = "application/json"
    error_content_type = "application/json"
    # Headers and body in one write: split small writes meet delayed ACKs (~40 ms each).
    wbufsize = -1

    def serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.fake.handle(self.command, self.path, headers, raw)
        if status == 0:
            self.close_connection = True
            return
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", self.content_type if status < 400
                             else self.error_content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Fault:
    """A scripted failure. It matches request number ``at``, or requests with ``method`` and
    a path matching the regex ``path``, ``times`` times. ``after``: the request takes effect
    and only its answer is replaced. ``drop``: the connection closes unanswered."""

    at: int | None = None
    method: str | None = None
    path: str | None = None
    status: int = 503
    after: bool = False
    drop: bool = False
    retry_after: float | None = None
    times: int = 1

    def matches(self, n: int, method: str, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.at is not None:
            return self.at == n
        return ((self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, path) is not None))

    def describe(self) -> str:
        """How the request log records it: ``503``, ``drop after``…"""
        return f"{'drop' if self.drop else self.status}{' after' if self.after else ''}"


@dataclass
class Logged:
    n: int
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    status: int = 0
    fault: str | None = None


class ScriptedFaults:
    """The request log, the write counter and the scripted faults of a fake.

    The fake sets ``_lock`` (an ``RLock``), ``log``, ``faults`` and ``write_calls``.
    """

    _lock: threading.RLock
    log: list[Logged]
    faults: list[Fault]
    write_calls: int

    def requests(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method)
                    and (path is None or re.search(path, e.path))]

    def fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _arrive(self, method: str, path: str, query: dict[str, str]) -> tuple[Logged,
                                                                             Fault | None]:
        """Log a request (under ``_lock``), count it if a write, and take its fault if any."""
        entry = Logged(len(self.log) + 1, method, path, query)
        self.log.append(entry)
        if method != "GET":
            self.write_calls += 1
        fault = next((f for f in self.faults if f.matches(entry.n, method, path)), None)
        if fault is not None:
            fault.times -= 1
        return entry, fault
