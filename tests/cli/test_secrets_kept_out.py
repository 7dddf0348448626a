"""A credential a service quotes back in an error stays out of stderr and the run's summary.

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
    (tmp_path / "customers.csv").write_text("id,email,email_ok\n1,ada@inbox-mail.com,yes\n")
    path = tmp_path / "segsync.toml"
    path.write_text(f"""\
[store]
path = "segsync.db"

[sources.crm]
type = "pos_csv"
path = "customers.csv"
stream = "customers"
mapping = {{ customer_key = "id", email = "email", email_consent = "email_ok" }}
consent_values = {{ yes = "subscribed" }}

[destinations.klaviyo]
base_url = "http://127.0.0.1:{server.server_address[1]}"

[segments.everyone]
query = "number_of_orders >= 0"

[syncs.newsletter]
segment = "everyone"
destination = "klaviyo"
target = "Newsletter"
""")
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
    for result in (check, run, status):
        assert KEY not in result.stdout + result.stderr
