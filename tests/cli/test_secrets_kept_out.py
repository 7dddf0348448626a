"""A credential a service quotes back in an error stays out of stderr, the summary and the log.

cron mails stderr to whoever reads the box's mail, and ``segsync status --json`` feeds
dashboards: neither may carry an API key. The service here answers every request with a
Klaviyo-shaped 401 whose detail quotes the key it was sent (some services do).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers_one_sync import write_one_sync_config

KEY = "pk_0123456789abcdef0123"


class _QuotesTheKey(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        sent = self.headers.get("Authorization", "").removeprefix("Klaviyo-API-Key ")
        body = json.dumps({"errors": [{
            "id": "3c2b1a", "status": 401, "code": "not_authenticated",
            "title": "Incorrect authentication credentials.",
            "detail": f"The API key {sent} is not valid.", "source": {"pointer": "/data/"},
        }]}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def config(tmp_path, monkeypatch) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QuotesTheKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = write_one_sync_config(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("SEGSYNC_DESTINATIONS__KLAVIYO__API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    yield path
    server.shutdown()


def test_check_run_and_status_never_print_the_key(config, cli):
    check = cli("check")
    assert check.code == 1
    assert "The API key *** is not valid" in check.stderr

    run = cli("run")
    assert run.code == 1
    assert "not_authenticated: The API key *** is not valid" in run.stderr

    status = cli("status", "--json")
    assert "The API key *** is not valid" in status.stdout
    log = cli("log", "--json")
    assert "The API key *** is not valid" in log.stdout
    for result in (check, run, status, log):
        assert KEY not in result.stdout + result.stderr
