"""``[alerts]`` end to end: the real ``segsync run`` over the demo exports, posting to a local
webhook on 127.0.0.1 that takes the alert, is down, is slow or answers 500."""

from __future__ import annotations

import json
import textwrap

import pytest
from fakes.webhook import PATH, WebhookFake, refused_url

from segsync.core.store import open_store, run_lock

MISSING_SALES = ("SEGSYNC_SOURCES__SQUARE_SALES__PATH", "examples/exports/missing.csv")
#: The file destination's folder under a file: its four syncs fail, the SMS one goes through.
BROKEN_FILES = ("SEGSYNC_DESTINATIONS__FILES__FOLDER", "segsync.toml/out")


@pytest.fixture
def hook(monkeypatch):
    with WebhookFake() as fake:
        monkeypatch.setenv("SEGSYNC_ALERTS__WEBHOOK_URL", fake.url)
        monkeypatch.setenv("SEGSYNC_ALERTS__LABEL", "Marginalia")
        yield fake


def last_exit_code(demo) -> int:
    db = open_store(demo / "segsync.db")
    try:
        return db.execute("SELECT exit_code FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        db.close()


def test_a_clean_run_posts_nothing(demo, cli, hook):
    assert cli("run").code == 0
    assert cli("run").code == 0
    assert hook.requests == []


def test_a_failed_source_is_named_in_the_alert(demo, cli, hook, monkeypatch):
    monkeypatch.setenv(*MISSING_SALES)
    result = cli("run")
    assert result.code == 1, result.stderr
    [alert] = hook.accepted
    assert alert["text"].startswith(":x: *Marginalia*: segsync run 1 failed (exit 1)\npulled ")
    assert "source square_sales failed: " in alert["text"] and "missing.csv" in alert["text"]


def test_a_failed_sync_is_alerted_and_the_next_success_says_it_is_over(demo, cli, hook,
                                                                      monkeypatch):
    monkeypatch.setenv(*BROKEN_FILES)
    assert cli("run").code == 1
    [alert] = hook.accepted
    assert "; 5 syncs: +" in alert["text"]
    assert "• sync vip_list: NotADirectoryError: [Errno 20] Not a directory: " in alert["text"]
    assert "sync fading_sms" not in alert["text"]  # it went through

    monkeypatch.delenv(BROKEN_FILES[0])
    assert cli("run").code == 0
    assert hook.accepted[1]["text"].startswith(
        ":white_check_mark: *Marginalia*: segsync run 2 succeeded again; run 1 exited 1")
    assert cli("run").code == 0
    assert len(hook.requests) == 2  # recovery is said once


def test_held_removals_post_a_held_alert_with_the_reason(demo, cli, hook, monkeypatch):
    monkeypatch.setenv("SEGSYNC_ALERTS__FORMAT", "json")
    hook.mode = "json"
    assert cli("run").code == 0
    monkeypatch.setenv("SEGSYNC_SEGMENTS__LAPSED__QUERY", "last_order_date < 1990-01-01")
    assert cli("run").code == 4
    [alert] = hook.accepted
    assert (alert["event"], alert["exit_code"], alert["run"]["id"]) == ("held", 4, 2)
    assert alert["store"] == "Marginalia" and alert["config"] == str(demo / "segsync.toml")
    [problem] = alert["problems"]
    assert problem.startswith("sync lapsed_winback: 7 removals held (7 removals exceed 20% of")
    assert "--allow-large-removals" in alert["headline"]


def test_a_run_that_finds_the_lock_taken_posts_that_it_did_not_start(demo, cli, hook,
                                                                    monkeypatch):
    monkeypatch.setenv("SEGSYNC_ALERTS__FORMAT", "json")
    hook.mode = "json"
    with run_lock(demo / "segsync.db"):
        result = cli("run")
    assert result.code == 3
    [alert] = hook.accepted
    assert (alert["event"], alert["exit_code"], alert["run"]) == ("locked", 3, None)
    assert alert["summary"].startswith("another segsync run holds the lock on")


@pytest.mark.parametrize("webhook", ["down", "slow", "500"])
def test_a_webhook_that_is_down_slow_or_failing_leaves_the_exit_code_alone(
        demo, cli, monkeypatch, webhook):
    monkeypatch.setenv("SEGSYNC_ALERTS__TIMEOUT", "0.3")
    monkeypatch.setenv("SEGSYNC_ALERTS__ATTEMPTS", "2")
    monkeypatch.setenv(*BROKEN_FILES)
    with WebhookFake(delay=1.0 if webhook == "slow" else 0,
                     script=[(500, "rollup_error", {})] * 2 if webhook == "500" else []) as fake:
        url = refused_url() if webhook == "down" else fake.url
        monkeypatch.setenv("SEGSYNC_ALERTS__WEBHOOK_URL", url)
        result = cli("run")
    assert result.code == 1 and last_exit_code(demo) == 1
    assert "warning: alert not delivered to 127.0.0.1" in result.stderr
    assert PATH not in result.stderr
    assert len(fake.requests) == (0 if webhook == "down" else 2)
    # Held removals keep their own code too.
    monkeypatch.delenv(BROKEN_FILES[0])
    assert cli("run").code == 0
    monkeypatch.setenv("SEGSYNC_SEGMENTS__LAPSED__QUERY", "last_order_date < 1990-01-01")
    monkeypatch.setenv("SEGSYNC_ALERTS__WEBHOOK_URL", refused_url())
    assert cli("run").code == 4 and last_exit_code(demo) == 4


def test_a_bug_in_alerting_is_a_warning_and_the_run_keeps_its_code(demo, cli, hook,
                                                                   monkeypatch):
    def broken(*_args):
        raise RuntimeError("formatter exploded")

    monkeypatch.setattr("segsync.core.alerts.render", broken)
    monkeypatch.setenv(*BROKEN_FILES)
    result = cli("run")
    assert result.code == 1
    assert "warning: alert not sent: RuntimeError: formatter exploded" in result.stderr


LEAKY_PLUGIN = '''
from pydantic import SecretStr

from segsync.core import Capabilities, ConnectorConfig, Destination
from segsync.core.errors import FatalError
from segsync.plugins import hookimpl


class LeakyConfig(ConnectorConfig):
    api_key: SecretStr
    password: str = ""


class Leaky(Destination):
    """A destination whose error quotes its credentials, as a careless plugin might."""

    type_name = "leaky"
    Config = LeakyConfig

    @property
    def capabilities(self):
        return Capabilities(identity="email", max_batch=100)

    def ensure_target(self, name, options):
        raise FatalError("login refused for " + self.config.api_key.get_secret_value()
                         + " with password " + self.config.password, status=401)

    def apply(self, target, changes):
        return []


@hookimpl
def register_destinations(register):
    register(Leaky)
'''

FILE_KEY = "file-secret-key-0123456789"
FILE_PASSWORD = "hunter2-file-password"
ENV_KEY = "env-secret-key-9876543210"


@pytest.mark.parametrize("payload_format", ["slack", "json"])
def test_no_secret_from_the_file_or_the_environment_is_ever_posted(demo, cli, monkeypatch,
                                                                    payload_format):
    (demo / "plugins").mkdir()
    (demo / "plugins" / "leaky.py").write_text(LEAKY_PLUGIN)
    config = demo / "segsync.toml"
    config.write_text(config.read_text().replace("plugin_dirs = []", 'plugin_dirs = ["plugins"]')
                      + textwrap.dedent(f"""
        [destinations.leaky_file]
        type = "leaky"
        api_key = "{FILE_KEY}"
        password = "{FILE_PASSWORD}"

        [destinations.leaky_env]
        type = "leaky"

        [syncs.from_file]
        segment = "email_subscribers"
        destination = "leaky_file"

        [syncs.from_env]
        segment = "email_subscribers"
        destination = "leaky_env"
        """))
    monkeypatch.setenv("SEGSYNC_LOAD_PLUGINS", "leaky")
    monkeypatch.setenv("SEGSYNC_DESTINATIONS__LEAKY_ENV__API_KEY", ENV_KEY)
    monkeypatch.setenv("SEGSYNC_ALERTS__FORMAT", payload_format)
    with WebhookFake(mode=payload_format) as hook:
        monkeypatch.setenv("SEGSYNC_ALERTS__WEBHOOK_URL", hook.url)
        result = cli("run")
    assert result.code == 1, result.stderr
    assert len(hook.accepted) == 1
    raw = hook.requests[0].raw.decode()
    for secret in (FILE_KEY, FILE_PASSWORD, ENV_KEY, PATH, "s3cr3tW3bh00kT0k3n"):
        assert secret not in raw, secret
    # The errors did reach the alert, scrubbed: the test exercised the leak it guards.
    body = json.loads(raw)
    text = "\n".join([body["text"], *body.get("problems", [])])
    assert ("sync from_file: target 'email_subscribers': login refused for *** with password "
            "***; 52 failed") in text
    assert "sync from_env: target 'email_subscribers': login refused for *** with pass" in text
