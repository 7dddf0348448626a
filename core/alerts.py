"""Alerts: a webhook post when an unattended ``segsync run`` needs someone.

``segsync run`` is meant to run from a scheduler with nobody watching, so a run that exits 1
(a source, a file, a sync or some records failed), 3 (another run held the store's lock, so
this one did nothing) or 4 (a guardrail held removals for an operator to decide) posts to
``[alerts] webhook_url``. With ``on_recovery`` the first run that succeeds after a failed, held
or killed one posts too, so whoever saw the failure learns it is over. Exit 2 (bad config or
usage) is not alerted: it is what a person at a terminal sees, and a config broken under a
scheduler may be unable to say where to post; ``segsync status --fail-if-older-than`` catches
that, and a run that was killed before it could post.

Two payloads: ``slack`` is Slack's incoming-webhook JSON (``text``, complete on its own, plus
``blocks``); ``json`` is segsync's own, with the keys :func:`json_payload` documents.

Two promises, each tested:

* **No secret is ever posted.** Every string in a payload, and in the warning about an alert
  that could not be delivered, has each configured secret replaced by ``***``: every
  ``SecretStr`` of the settings and of the connectors' validated configs (so values from the
  file and from ``SEGSYNC_`` variables alike), any connector setting named like a credential,
  and the webhook URL itself, whose path is a Slack webhook's token.
* **An alert never changes the run's outcome.** Delivery is bounded (``attempts`` tries of at
  most ``timeout`` seconds, retrying 429, 5xx and network errors with :class:`RetryPolicy`);
  whatever happens, including a bug here, ends as one warning on stderr and the run exits
  with its own code.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr
from sqlite_utils import Database

from . import __version__
from .errors import FatalError, Interrupted, RetriableError, SegsyncError
from .http import make_client, raise_for_status, send
from .retry import RetryPolicy
from .runs import Run, get_run, previous_run, run_summary_text
from .settings import AlertSettings, Settings
from .store import utcnow

log = logging.getLogger(__name__)

Event = Literal["failed", "locked", "held", "recovered"]

#: Which exit codes of ``segsync run`` are alerted, as what.
EVENTS: dict[int, Event] = {1: "failed", 3: "locked", 4: "held"}

#: Problems listed in one alert; the rest are counted ("… and 12 more").
MAX_PROBLEMS = 10
#: Characters of one problem line: error messages can quote whole responses.
MAX_PROBLEM_CHARS = 300
#: Slack refuses a section block whose text is longer than this.
SLACK_SECTION_CHARS = 3000

#: Connector settings whose plain-string value is a credential even when the connector's
#: model does not declare it a ``SecretStr`` (a plugin's ``api_key: str``).
_CREDENTIAL_NAME = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|credentials?)$",
                              re.IGNORECASE)
#: Shorter "secrets" are not redacted: replacing every "ab" would garble the message and
#: protect nothing.
_MIN_SECRET = 4
REDACTED = "***"


@dataclass
class Alert:
    """What happened, before it is dressed as one payload or the other."""

    event: Event
    exit_code: int
    headline: str
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    #: The run as ``segsync status`` shows it (without its summary); None when it never
    #: started (exit 3).
    run: dict[str, Any] | None = None
    #: For ``recovered``: the failed, held or killed run before this one.
    previous: dict[str, Any] | None = None


# -- what to say -------------------------------------------------------------------------------

def build_alert(db: Database, run: Run | None, exit_code: int, error: str | None = None,
                on_recovery: bool = True) -> Alert | None:
    """The alert a ``segsync run`` that ended with ``exit_code`` calls for, or None."""
    record = get_run(db, run.id) if run is not None else None
    if exit_code in EVENTS:
        event = EVENTS[exit_code]
        name = f"segsync run {record['id']}" if record else "segsync run"
        headline = {
            "failed": f"{name} failed (exit 1)",
            "locked": "segsync run did not start (exit 3): another run holds the store's lock",
            "held": f"{name} held removals (exit 4): check them, then run again with "
                    "--allow-large-removals to send them",
        }[event]
        if record is None:
            return Alert(event, exit_code, headline, error or "")
        return Alert(event, exit_code, headline, run_summary_text(record["summary"]),
                     _problems(record["summary"], record["id"]), _brief(record))
    if exit_code != 0 or not on_recovery or record is None:
        return None
    before = previous_run(db, record["id"], record["command"])
    if before is None or before["exit_code"] not in (1, 4, None):
        return None
    how = (f"exited {before['exit_code']}" if before["exit_code"] is not None
           else "did not finish (killed?)")
    return Alert("recovered", 0,
                 f"segsync run {record['id']} succeeded again; run {before['id']} {how}",
                 run_summary_text(record["summary"]), [], _brief(record), _brief(before))


def _brief(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {k: record[k] for k in ("id", "started_at", "finished_at", "status", "exit_code",
                                   "as_of")}


def _problems(summary: dict[str, Any], run_id: int) -> list[str]:
    """One line per source or sync that made the run exit non-zero, in the run's order."""
    lines = []
    for source in summary.get("sources") or []:
        if source.get("status") == "failed":
            lines.append(f"source {source['source']} failed: {source.get('error')}")
        for name, reason in (source.get("file_errors") or {}).items():
            lines.append(f"source {source['source']}: {name}: {reason}")
    for sync in summary.get("syncs") or []:
        parts = [str(sync["error"])] if sync.get("error") else []
        if sync.get("held"):
            parts.append(f"{sync['held']} removals held ({sync.get('held_reason')})")
        if sync.get("failed") or sync.get("rejected"):
            parts.append(f"{sync.get('failed', 0)} failed, {sync.get('rejected', 0)} rejected "
                         f"(segsync log --run {run_id} --sync {sync.get('sync')})")
        if parts:
            lines.append(f"sync {sync.get('sync')}: " + "; ".join(parts))
    return [_clip(line, MAX_PROBLEM_CHARS) for line in lines]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(problems: list[str]) -> list[str]:
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"… and {len(problems) - MAX_PROBLEMS} more (segsync status)")
    return shown


# -- how to say it -----------------------------------------------------------------------------

def store_label(settings: Settings) -> str:
    """How alerts name the store: ``[alerts] label``, else the config file's path."""
    if settings.alerts.label:
        return settings.alerts.label
    return str(settings.config_path) if settings.config_path else "segsync"


def _where(alert: Alert) -> str:
    run = alert.run or {}
    parts = [socket.gethostname()]
    if run.get("id") is not None:
        parts.append(f"run {run['id']}")
    if run.get("as_of"):
        parts.append(f"as of {run['as_of']}")
    return " · ".join(parts)


_SLACK_EMOJI = {"failed": ":x:", "held": ":warning:", "locked": ":lock:",
                "recovered": ":white_check_mark:"}


def _mrkdwn(text: str) -> str:
    # Slack reads &, < and > as markup: a sync named "<!channel>" would ping everyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, label: str) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the whole message, also the notification
    text) and ``blocks`` (the same, laid out: headline and summary, problems, context)."""
    head = f"{_SLACK_EMOJI[alert.event]} *{_mrkdwn(label)}*: {_mrkdwn(alert.headline)}"
    lines = [head] + ([_mrkdwn(alert.summary)] if alert.summary else [])
    problems = [f"• {_mrkdwn(p)}" for p in _listed(alert.problems)]
    blocks: list[dict[str, Any]] = [
        {"type": "section",
         "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), SLACK_SECTION_CHARS)}},
    ]
    if problems:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": _clip("\n".join(problems), SLACK_SECTION_CHARS)}})
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": _mrkdwn(_where(alert))}]})
    return {"text": "\n".join(lines + problems), "blocks": blocks}


def json_payload(alert: Alert, settings: Settings, label: str) -> dict[str, Any]:
    """segsync's own payload, for any receiver that takes JSON. Keys (README: "Alerts"):

    ``event`` (``failed``, ``locked``, ``held``, ``recovered``), ``exit_code``, ``store``
    (the label), ``text`` (headline and summary as one plain line), ``headline``, ``summary``
    (the run's one-line summary), ``problems`` (one line per failed source or sync),
    ``run`` and, for ``recovered``, ``previous_run`` (``id``, ``started_at``, ``finished_at``,
    ``status``, ``exit_code``, ``as_of``; ``run`` is null on exit 3), ``host``, ``config``
    (the config file's path), ``segsync_version`` and ``sent_at`` (UTC).
    """
    return {
        "event": alert.event,
        "exit_code": alert.exit_code,
        "store": label,
        "text": f"{label}: {alert.headline}" + (f": {alert.summary}" if alert.summary else ""),
        "headline": alert.headline,
        "summary": alert.summary,
        "problems": alert.problems,
        "run": alert.run,
        "previous_run": alert.previous,
        "host": socket.gethostname(),
        "config": str(settings.config_path) if settings.config_path else None,
        "segsync_version": __version__,
        "sent_at": utcnow(),
    }


def render(alert: Alert, settings: Settings) -> dict[str, Any]:
    label = store_label(settings)
    if settings.alerts.format == "slack":
        return slack_payload(alert, label)
    return json_payload(alert, settings, label)


# -- never a secret ----------------------------------------------------------------------------

def secret_values(settings: Settings, *connector_groups: dict[str, Any]) -> set[str]:
    """Every credential the settings and the built connectors hold, as plain strings.

    The connectors' validated configs are walked for ``SecretStr`` values (so a key set in
    the file and one set through ``SEGSYNC_…`` are both found); the raw tables are walked too,
    for settings named like a credential that a connector keeps as a plain string. The
    webhook URL's path and query count on their own: error messages quote paths.
    """
    found: set[str] = set()

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                walk(getattr(value, key), key)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, str(key))
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item, name)
        elif isinstance(value, str) and _CREDENTIAL_NAME.search(name):
            found.add(value)

    walk(settings)
    for group in connector_groups:
        for connector in group.values():
            walk(getattr(connector, "config", None))
    if settings.alerts.webhook_url is not None:
        found |= _url_secrets(settings.alerts.webhook_url.get_secret_value())
    return {s for s in found if len(s.strip()) >= _MIN_SECRET}


def _url_secrets(url: str) -> set[str]:
    """A webhook URL and the parts of it that messages quote (a Slack webhook's path is its
    token)."""
    parts = urlsplit(url)
    return {s for s in (url, parts.path, parts.query, f"{parts.path}?{parts.query}")
            if len(s.strip()) >= _MIN_SECRET}


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a payload: dicts, lists, strings) with every secret replaced by ``***``."""
    # Longest first, so a key containing another goes whole. Repeated until none is left,
    # because a replacement can join its neighbours into another occurrence ("**x*" in
    # "**x**x*"); every secret is longer than REDACTED, so each pass shortens the text.
    ordered = sorted({s for s in secrets if len(s) > len(REDACTED)}, key=len, reverse=True)

    def scrub(item: Any) -> Any:
        if isinstance(item, str):
            while any(secret in item for secret in ordered):
                for secret in ordered:
                    item = item.replace(secret, REDACTED)
            return item
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [scrub(v) for v in item]
        return item

    return scrub(value)


# -- delivery ----------------------------------------------------------------------------------

def deliver(alerts: AlertSettings, payload: dict[str, Any], secrets: Iterable[str] = (), *,
            sleep: Callable[[float], None] = time.sleep,
            transport: httpx.BaseTransport | None = None) -> bool:
    """POST ``payload`` (already redacted) to the webhook; True once it answered 2xx.

    429, 5xx, timeouts and refused connections are retried, at most ``attempts`` tries;
    any other answer (Slack's 404 ``no_service``, a 403) is final at once, since sending the
    same alert again cannot fix it. Never raises: a failure is one warning.
    """
    if alerts.webhook_url is None:
        return False
    url = alerts.webhook_url.get_secret_value()
    secrets = set(secrets) | _url_secrets(url)
    policy = RetryPolicy(attempts=alerts.attempts, base=0.5, max_wait=4.0, jitter=0.5,
                         max_retry_after=10.0, sleep=sleep)

    def post(client: httpx.Client) -> None:
        request = client.build_request("POST", url, json=payload,
                                       headers={"User-Agent": f"segsync/{__version__}"})
        # The errors quote the request's path, the webhook's token: scrubbed before the retry
        # policy logs them.
        try:
            raise_for_status(send(client, request), describe=lambda r: r.text[:200].strip())
        except RetriableError as exc:
            raise RetriableError(redact(str(exc), secrets), exc.retry_after) from None
        except FatalError as exc:
            raise FatalError(redact(str(exc), secrets), exc.status) from None

    try:
        with make_client("", timeout=httpx.Timeout(alerts.timeout),
                         transport=transport, max_connections=1) as client:
            policy.call(post, client)
    except SegsyncError as exc:
        log.warning("alert not delivered to %s: %s", urlsplit(url).hostname, exc)
        return False
    return True


def notify(settings: Settings, db: Database, run: Run | None, exit_code: int,
           secrets: Iterable[str] = (), error: str | None = None) -> bool:
    """Build, redact and deliver the alert a run's end calls for; True when one was posted.

    Never raises: whatever goes wrong here must leave the run's exit code alone.
    """
    if settings.alerts.webhook_url is None:
        return False
    secrets = set(secrets) | secret_values(settings)
    try:
        alert = build_alert(db, run, exit_code, error, settings.alerts.on_recovery)
        if alert is None:
            return False
        return deliver(settings.alerts, redact(render(alert, settings), secrets), secrets)
    except Exception as exc:  # a bug in alerting must not fail the run it reports on
        log.debug("alert failed", exc_info=True)
        log.warning("alert not sent: %s", redact(f"{type(exc).__name__}: {exc}", secrets))
        return False


@dataclass
class RunWatch:
    """What :func:`alerting` needs from the run it watches: its record, once it has one."""

    run: Run | None = None


@contextlib.contextmanager
def alerting(settings: Settings, db: Database,
             secrets: Iterable[str] = ()) -> Iterator[RunWatch]:
    """Watch a ``segsync run``: on the way out, post what its end calls for.

    Enter it before the run lock, so that exit 3 is seen, and set ``watch.run`` once the run
    is recorded. A run that raises is alerted with the error's exit code and the error
    re-raised unchanged; one stopped by Ctrl-C is not alerted, a person stopped it, but one
    stopped by SIGTERM is: the scheduler gave up on it, and nobody is watching.
    """
    watch = RunWatch()
    try:
        yield watch
    except Interrupted as exc:
        if not exc.by_person:
            notify(settings, db, watch.run, exc.exit_code, secrets, error=str(exc))
        raise
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, SegsyncError) else 1
        notify(settings, db, watch.run, code, secrets, error=str(exc))
        raise
    if watch.run is not None:
        notify(settings, db, watch.run, watch.run.exit_code, secrets)
