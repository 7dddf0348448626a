"""A strict fake of a Slack incoming webhook (and of a generic JSON receiver) on 127.0.0.1.

What it emulates of Slack's incoming webhooks (api.slack.com/messaging/webhooks and the
2016-05-17 changelog "Improving error conditions for Incoming Webhooks"):

* ``POST`` only, to the webhook's secret path (``/services/T…/B…/…``); any other path answers
  ``404 no_service``.
* The body must be JSON (``Content-Type: application/json``), an object with a non-empty
  string ``text`` (segsync always sends one, so the notification is never blank) and, if
  present, ``blocks``: at most 50 blocks of known types, a section's mrkdwn text at most
  3,000 characters, a context's elements at most 10. Anything else is ``400
  invalid_payload`` (or ``invalid_blocks``).
* Success is ``200`` with the plain-text body ``ok``; errors are plain-text codes too.

``mode="json"`` accepts any JSON object instead (a generic receiver). ``script`` replaces the
next answers (``(status, body, headers)``, e.g. ``(500, "rollup_error", {})``) and ``delay``
makes every answer late, to test timeouts. Every request is kept in ``requests`` (raw body
included), accepted or not.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fakes.server import LoopbackServer, QuietHandler

PATH = "/services/T0SEGSYNC/B0ALERTS/s3cr3tW3bh00kT0k3n"
BLOCK_TYPES = {"section", "context", "divider", "header", "actions", "image", "rich_text"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class WebhookFake:
    mode: Literal["slack", "json"] = "slack"
    delay: float = 0.0
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None
    url: str = ""

    def __enter__(self) -> WebhookFake:
        self._server = LoopbackServer(_Handler, self)
        self.url = self._server.url + PATH
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def accepted(self) -> list[Any]:
        """The payloads answered 200, in order."""
        return [r.json for r in self.requests if r.status == 200]

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict]:
        entry = Received(path, headers, raw)
        with self._lock:
            self.requests.append(entry)
            scripted = self.script.pop(0) if self.script else None
        if self.delay:
            time.sleep(self.delay)
        status, body, extra = scripted or self._judge(path, headers, raw)
        entry.status = status
        return status, body, extra

    def _judge(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict]:
        if path != PATH:
            return 404, "no_service", {}
        if not headers.get("content-type", "").startswith("application/json"):
            return 400, "invalid_payload", {}
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", {}
        if not isinstance(payload, dict):
            return 400, "invalid_payload", {}
        if self.mode == "json":
            return 200, "ok", {}
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, "missing_text_or_fallback_or_attachments", {}
        if "blocks" in payload and not _valid_blocks(payload["blocks"]):
            return 400, "invalid_blocks", {}
        return 200, "ok", {}


def _valid_blocks(blocks: Any) -> bool:
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return False
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            return False
        if block["type"] == "section":
            text = block.get("text")
            if (not isinstance(text, dict) or text.get("type") not in ("mrkdwn", "plain_text")
                    or not isinstance(text.get("text"), str)
                    or not 0 < len(text["text"]) <= 3000):
                return False
        if block["type"] == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 10:
                return False
    return True


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.fake.answer(self.path, headers, raw)
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a client that timed out (the ``delay`` tests) has gone


def refused_url() -> str:
    """A webhook URL on a loopback port nothing listens on: the receiver is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{PATH}"
