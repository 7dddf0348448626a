"""A strict fake of the Mailchimp Marketing API v3, served on 127.0.0.1 for connector tests.

What it models (reference/destinations.md §1 and §5), and how strictly:

* Transport: HTTP Basic with any user name and the API key as password (401 "API Key Invalid"
  otherwise); ``application/problem+json`` errors with ``type``/``title``/``status``/
  ``detail``/``instance`` and an ``X-Request-Id`` equal to ``instance``; ``count`` ≤ 1000 /
  ``offset`` pagination with ``total_items``; ``fields`` partial responses (dot notation), so
  a client that reads a field it did not ask for is caught; unknown routes 404, wrong
  methods 405.
* The 10-connection limit: requests in flight are counted, the peak is kept, and a request
  arriving while ``max_connections`` are already in flight gets a 429 (no Retry-After, as on
  Mailchimp).
* Members: ``id`` = md5(lower(email)); a path takes the hash or the raw address. Statuses
  subscribed / unsubscribed (with ``unsubscribe_source`` self or admin) / cleaned / pending /
  transactional / archived, and permanently deleted ("forgotten") addresses. The rules:
  subscribing a self-unsubscribed or cleaned contact is 400 "Member In Compliance State";
  any write to a forgotten address is 400 "Forgotten Email Not Subscribed"; any other write
  to a cleaned contact is refused; an upsert with only ``status_if_new`` leaves an existing
  contact's status alone (an archived one stays archived) and an explicit ``status`` sets it
  (unarchiving); POST of an existing member is 400 "Member Exists"; tags for a non-member 404;
  DELETE of an unremovable member 405; addresses matching ``fake_pattern`` are "fake or
  invalid"; unknown merge tags and missing required merge fields (unless
  ``skip_merge_validation``) are 400 with ``errors[]``. A null merge value blanks the field,
  so a client that sends nulls is caught.
* Batch subscribe (``POST /lists/{id}``): ≤ 500 members (400 above), ``update_existing``,
  ``skip_duplicate_check``, per-member refusals in ``errors[]`` with ``error_code``; unknown
  body or member fields are a 400. A member's ``tags`` (names) are created when missing and
  put on the contact whether it is new or existing, **whatever its status** (unsubscribed
  and archived too; a cleaned one refuses the whole upsert), as Mailchimp does since 2022;
  ``sync_tags`` (with
  ``update_existing``) first takes every other tag off the contact.
* Tags are static segments. Creating one is **not** idempotent: a second create with the same
  name makes a second tag (Mailchimp's own behaviour is unverified; the fake takes the
  harsher one so a client that creates twice is caught). Tags POST matches names
  case-insensitively and creates unknown active ones. The segment batch takes ≤ 500 emails
  per array, ignores addresses not in the audience, and reports re-adds and absent removals
  as ``errors[]`` entries (the stricter reading of an unverified behaviour).
* Faults, each taken by the first matching request (a route, any write, or the n-th request):
  a 5xx before the write or **after** it was applied, a 429, a bodiless 403, a hang past the
  client's timeout before or after applying, a dropped connection before or after applying,
  and an answer cut off halfway through its body after applying.

Every request is counted by method and route template (``calls``); ``write_calls`` counts the
non-GET ones, which is what the push targets are measured in.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from fakes.server import LoopbackServer, QuietHandler

API_KEY = "0123456789abcdef0123456789abcdef-us19"
LIST_ID = "a1b2c3d4e5"
LIST_NAME = "Marginalia Customers"
#: What batch subscribe accepts, in the body and in each member; anything else is a 400.
BATCH_FIELDS = frozenset({"members", "update_existing", "sync_tags"})
MEMBER_FIELDS = frozenset({
    "email_address", "email_type", "status", "status_if_new", "merge_fields", "interests",
    "language", "vip", "location", "ip_signup", "timestamp_signup", "ip_opt", "timestamp_opt",
    "tags"})
SETTABLE = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional"})
LIMIT = 500
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"

FaultKind = Literal[
    "error_before", "error_after", "throttle", "bodiless_403",
    "timeout_before", "timeout_after", "disconnect_before", "disconnect_after",
    "truncate_after",
]
_TITLES = {403: "Forbidden", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}
_BEFORE: frozenset[str] = frozenset(
    {"error_before", "throttle", "bodiless_403", "timeout_before", "disconnect_before"})


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class Problem(Exception):
    """An API error, rendered as problem+json; ``field`` feeds batch ``errors[]`` entries."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []


@dataclass
class Member:
    email: str
    status: str
    merge_fields: dict[str, Any] = field(default_factory=dict)
    #: Who unsubscribed them (``self`` blocks resubscribing through the API).
    unsubscribe_source: str | None = None
    #: The status an archived contact had before it was archived.
    archived_from: str | None = None
    removable: bool = True


@dataclass
class Segment:
    id: int
    name: str
    type: str = "static"
    members: set[str] = field(default_factory=set)


@dataclass
class Audience:
    id: str
    name: str
    #: Merge tag → required.
    merge_fields: dict[str, bool]
    members: dict[str, Member] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    segments: dict[int, Segment] = field(default_factory=dict)


@dataclass
class Fault:
    """One injected failure. ``route`` is a route template (``POST /lists/{list_id}``),
    ``"write"`` for any non-GET, or None for any request; ``at`` pins it to the n-th request
    (1-based, counting every request received)."""

    kind: FaultKind
    route: str | None = None
    at: int | None = None
    status: int = 503


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to hold the response back (past the client's timeout).
    hang: float = 0.0
    #: Close the connection without answering.
    disconnect: bool = False
    #: Close the connection halfway through the body.
    truncate: bool = False


# Route templates, most specific first; the template is the key calls are counted under.
_ROUTES: list[tuple[str, str]] = [
    ("/ping", "ping"),
    ("/lists", "lists"),
    ("/lists/{list_id}", "list"),
    ("/lists/{list_id}/members", "members"),
    ("/lists/{list_id}/members/{member}", "member"),
    ("/lists/{list_id}/members/{member}/tags", "member_tags"),
    ("/lists/{list_id}/members/{member}/actions/delete-permanent", "delete_permanent"),
    ("/lists/{list_id}/segments", "segments"),
    ("/lists/{list_id}/segments/{segment_id}", "segment"),
    ("/lists/{list_id}/segments/{segment_id}/members", "segment_members"),
    ("/lists/{list_id}/tag-search", "tag_search"),
]
_COMPILED = [
    (template, name, re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)",
                                              re.escape(template)) + "$"))
    for template, name in _ROUTES
]


class FakeMailchimp:
    """The fake's state, its HTTP server and its knobs; use as a context manager."""

    def __init__(self, *, api_key: str = API_KEY, max_connections: int = 10,
                 latency: float = 0.0, hang: float = 1.0,
                 fake_pattern: str = r"@example\.com$", record: bool = False):
        self.api_key = api_key
        self.max_connections = max_connections
        #: Seconds every request takes (makes concurrency observable).
        self.latency = latency
        #: Seconds a timeout fault holds the response back.
        self.hang = hang
        self.fake_pattern = re.compile(fake_pattern, re.IGNORECASE)
        self.lists: dict[str, Audience] = {}
        self.calls: Counter[str] = Counter()
        self.requests = 0
        self.in_flight = 0
        self.peak = 0
        #: Requests refused with a 429 because too many were in flight.
        self.refused = 0
        self.faults: list[Fault] = []
        #: With ``record``: every request as (method, route template, decoded JSON body).
        self.recorded: list[tuple[str, str, Any]] | None = [] if record else None
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._server: LoopbackServer | None = None
        self.add_audience(LIST_NAME, LIST_ID)

    # -- server -------------------------------------------------------------------------------

    def __enter__(self) -> FakeMailchimp:
        self._server = LoopbackServer(_Handler, self, server_class=_Server,
                                      name="fake-mailchimp")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not serving"
        return f"{self._server.url}/3.0"

    # -- seeding and inspection ---------------------------------------------------------------

    def add_audience(self, name: str, list_id: str | None = None,
                     merge_fields: tuple[str, ...] = ("FNAME", "LNAME", "PHONE", "BIRTHDAY"),
                     required: tuple[str, ...] = ()) -> str:
        list_id = list_id or uuid.uuid4().hex[:10]
        tags = {tag: tag in required for tag in (*merge_fields, *required)}
        self.lists[list_id] = Audience(list_id, name, tags)
        return list_id

    def seed(self, email: str, status: str = "subscribed", *, list_id: str = LIST_ID,
             merge_fields: dict[str, Any] | None = None, unsubscribe_source: str = "self",
             archived: bool = False, tags: tuple[str, ...] = (),
             removable: bool = True) -> Member:
        """Put a contact in the audience as it would be after its history elsewhere."""
        with self._lock:
            audience = self.lists[list_id]
            member = Member(email, status, dict(merge_fields or {}),
                            unsubscribe_source if status == "unsubscribed" else None,
                            removable=removable)
            if archived:
                member.archived_from, member.status = status, "archived"
            h = subscriber_hash(email)
            audience.members[h] = member
            for name in tags:
                self._tag_named(audience, name, create=True).members.add(h)
            return member

    def forget(self, email: str, list_id: str = LIST_ID) -> None:
        """Permanently delete a contact, as ``actions/delete-permanent`` does."""
        with self._lock:
            self._forget(self.lists[list_id], subscriber_hash(email))

    def create_tag(self, name: str, emails: tuple[str, ...] = (), list_id: str = LIST_ID,
                   type: str = "static") -> int:
        with self._lock:
            audience = self.lists[list_id]
            segment = Segment(next(self._ids), name, type)
            segment.members = {subscriber_hash(e) for e in emails
                               if subscriber_hash(e) in audience.members}
            audience.segments[segment.id] = segment
            return segment.id

    def member(self, email: str, list_id: str = LIST_ID) -> Member | None:
        return self.lists[list_id].members.get(subscriber_hash(email))

    def is_forgotten(self, email: str, list_id: str = LIST_ID) -> bool:
        return subscriber_hash(email) in self.lists[list_id].forgotten

    def tags_named(self, name: str, list_id: str = LIST_ID) -> list[Segment]:
        """Every segment whose name matches ``name`` case-insensitively (duplicates too)."""
        return [s for s in self.lists[list_id].segments.values()
                if s.name.casefold() == name.casefold()]

    def tag_emails(self, name: str, list_id: str = LIST_ID) -> set[str]:
        """Lower-cased addresses of the members of every tag called ``name``."""
        audience = self.lists[list_id]
        return {audience.members[h].email.lower() for s in self.tags_named(name, list_id)
                for h in s.members if h in audience.members}

    def destination_config(self, **overrides: Any) -> dict[str, Any]:
        """A ``[destinations.NAME]`` table pointing a mailchimp destination at this fake."""
        return {"api_key": self.api_key, "audience_id": LIST_ID, "base_url": self.url,
                **overrides}

    @property
    def write_calls(self) -> int:
        return sum(n for key, n in self.calls.items() if not key.startswith("GET "))

    def fail(self, kind: FaultKind, route: str | None = None, *, times: int = 1,
             status: int = 503, at: int | None = None) -> None:
        """Queue ``times`` faults of ``kind`` for the next matching requests."""
        with self._lock:
            self.faults.extend(Fault(kind, route, at, status) for _ in range(times))

    # -- request handling ---------------------------------------------------------------------

    def _enter(self) -> tuple[int, int]:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return self.requests, self.in_flight

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _take_fault(self, number: int, method: str, template: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.at is not None and fault.at != number:
                    continue
                if fault.route == "write" and method == "GET":
                    continue
                if fault.route not in (None, "write", f"{method} {template}"):
                    continue
                return self.faults.pop(i)
        return None

    def handle(self, method: str, target: str, raw: bytes, auth: str | None) -> Reply:
        """Answer one request (the HTTP handler calls this and writes the reply)."""
        number, in_flight = self._enter()
        url = urlsplit(target)
        path = url.path.removeprefix("/3.0")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = next(((t, n, m) for t, n, m in _COMPILED if m.match(path)), None)
        template = route[0] if route else path
        with self._lock:
            self.calls[f"{method} {template}"] += 1
        try:
            if not self._authorised(auth):
                raise Problem(401, "API Key Invalid", "Your API key may be invalid, or you've "
                              "attempted to access the wrong datacenter.")
            if in_flight > self.max_connections:
                with self._lock:
                    self.refused += 1
                raise Problem(429, "Too Many Requests", "You have exceeded the limit of 10 "
                              "simultaneous connections.")
            if route is None:
                raise Problem(404, "Resource Not Found", f"The requested resource {path} "
                              "could not be found.")
            fault = self._take_fault(number, method, template)
            if self.latency:
                time.sleep(self.latency)
            if fault is not None and fault.kind in _BEFORE:
                return self._fault_reply(fault)
            handler = getattr(self, f"_{method.lower()}_{route[1]}", None)
            if handler is None:
                raise Problem(405, "Method Not Allowed", f"{method} is not allowed on {path}.")
            params = route[2].match(path).groupdict()  # type: ignore[union-attr]
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise Problem(400, "JSON Parse Error", "We encountered an unspecified JSON "
                              "parsing error.") from None
            if self.recorded is not None:
                with self._lock:
                    self.recorded.append((method, template, body))
            with self._lock:
                status, payload = handler(query=query, body=body, **params)
            if method == "GET" and "fields" in query:
                payload = partial(payload, query["fields"])
            if fault is not None:
                return self._fault_reply(fault, applied=True, status=status, payload=payload)
            return _json_reply(status, payload)
        except Problem as problem:
            return _problem_reply(problem)

    def _authorised(self, auth: str | None) -> bool:
        if not auth or not auth.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(auth[6:]).decode()
        except ValueError:
            return False
        return decoded.partition(":")[2] == self.api_key

    def _fault_reply(self, fault: Fault, applied: bool = False, status: int = 200,
                     payload: Any = None) -> Reply:
        kind = fault.kind
        if kind == "throttle":
            return _problem_reply(Problem(429, "Too Many Requests", "Slow down."))
        if kind == "bodiless_403":
            return Reply(403, b"", content_type="text/html")
        if kind in ("disconnect_before", "disconnect_after"):
            return Reply(0, disconnect=True)
        if kind == "truncate_after":
            reply = _json_reply(status, payload)
            reply.truncate = True
            return reply
        if kind in ("timeout_before", "timeout_after"):
            reply = _json_reply(status, payload) if applied else _problem_reply(
                Problem(504, "Gateway Timeout", "The request took too long."))
            reply.hang = self.hang
            return reply
        title = _TITLES.get(fault.status, "Internal Server Error")
        detail = "A deep, internal error has occurred during the processing of your request."
        if applied:
            detail += " (the write was applied)"
        return _problem_reply(Problem(fault.status, title, detail))

    # -- helpers over the state (called under the lock) ---------------------------------------

    def _audience(self, list_id: str) -> Audience:
        audience = self.lists.get(list_id)
        if audience is None:
            raise Problem(404, "Resource Not Found", "The requested resource could not be "
                          "found.")
        return audience

    @staticmethod
    def _hash_of(member: str) -> str:
        return subscriber_hash(member) if "@" in member else member.lower()

    def _member_json(self, audience: Audience, h: str) -> dict[str, Any]:
        m = audience.members[h]
        tags = [{"id": s.id, "name": s.name} for s in audience.segments.values()
                if h in s.members]
        return {"id": h, "email_address": m.email, "unique_email_id": h[:10],
                "status": m.status, "merge_fields": dict(m.merge_fields), "tags": tags,
                "tags_count": len(tags), "list_id": audience.id}

    @staticmethod
    def _segment_json(audience: Audience, s: Segment) -> dict[str, Any]:
        return {"id": s.id, "name": s.name, "member_count": len(s.members), "type": s.type,
                "created_at": "2026-11-01T00:00:00+00:00",
                "updated_at": "2026-11-01T00:00:00+00:00", "options": {},
                "list_id": audience.id}

    @staticmethod
    def _page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], int]:
        try:
            count, offset = int(query.get("count", 10)), int(query.get("offset", 0))
        except ValueError:
            raise Problem(400, "Invalid Resource", "count and offset must be integers.") from None
        if not 0 < count <= 1000 or offset < 0:
            raise Problem(400, "Invalid Resource", "count must be between 1 and 1000.")
        return items[offset:offset + count], len(items)

    def _tag_named(self, audience: Audience, name: str, create: bool) -> Segment | None:
        for segment in audience.segments.values():
            if segment.type == "static" and segment.name.casefold() == name.casefold():
                return segment
        if not create:
            return None
        segment = Segment(next(self._ids), name)
        audience.segments[segment.id] = segment
        return segment

    def _forget(self, audience: Audience, h: str) -> None:
        audience.members.pop(h, None)
        audience.forgotten.add(h)
        for segment in audience.segments.values():
            segment.members.discard(h)

    def _upsert(self, audience: Audience, email: str, body: dict[str, Any], *,
                may_create: bool = True, may_update: bool = True,
                skip_merge_validation: bool = False) -> tuple[str, bool]:
        """The member state machine; returns the hash and whether the member is new."""
        h = subscriber_hash(email)
        if h in audience.forgotten:
            raise Problem(400, "Forgotten Email Not Subscribed", f"{email} was permanently "
                          "deleted and cannot be re-imported. The contact must re-subscribe "
                          "to get back on the list.")
        if self.fake_pattern.search(email):
            raise Problem(400, "Invalid Resource", f"{email} looks fake or invalid, please "
                          "enter a real email address.")
        status, status_if_new = body.get("status"), body.get("status_if_new")
        for name, value in (("status", status), ("status_if_new", status_if_new)):
            if value is not None and value not in SETTABLE:
                raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                              "validated.", [{"field": name, "message": f"not one of "
                                              f"{sorted(SETTABLE)}"}])
        merge = body.get("merge_fields") or {}
        unknown = sorted(set(merge) - set(audience.merge_fields))
        if unknown:
            raise Problem(400, "Invalid Resource", "Your merge fields were invalid.",
                          [{"field": f"merge_fields.{tag}", "message": "no such merge field"}
                           for tag in unknown])
        member = audience.members.get(h)
        if member is None:
            if not may_create:
                raise Problem(404, "Resource Not Found", "The requested resource could not "
                              "be found.")
            new_status = status or status_if_new
            if new_status is None:
                raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                              "validated.", [{"field": "status", "message": "status or "
                                              "status_if_new is required for a new member"}])
            missing = [tag for tag, required in audience.merge_fields.items()
                       if required and merge.get(tag) in (None, "")]
            if missing and not skip_merge_validation:
                raise Problem(400, "Invalid Resource", "Your merge fields were invalid.",
                              [{"field": f"merge_fields.{tag}", "message": "Please enter a "
                                "value"} for tag in missing])
            audience.members[h] = Member(email, new_status,
                                         {k: "" if v is None else v for k, v in merge.items()})
            return h, True
        if not may_update:
            raise Problem(400, "Member Exists", f"{email} is already a list member. Use PUT "
                          "to insert or update list members.")
        current = member.archived_from if member.status == "archived" else member.status
        if status == "subscribed" and (
                current == "cleaned"
                or (current == "unsubscribed" and member.unsubscribe_source == "self")):
            raise Problem(400, "Member In Compliance State", f"{email} is in a compliance "
                          "state due to unsubscribe, bounce, or compliance review and cannot "
                          "be subscribed.")
        if member.status == "cleaned":
            raise Problem(400, "Invalid Resource", f"This member's status is 'cleaned.' "
                          f"{email} bounced and cannot be edited or resubscribed.")
        if status is not None:
            # Only an explicit status changes it, and unarchives an archived contact.
            if status == "unsubscribed":
                member.unsubscribe_source = "admin"
            member.status, member.archived_from = status, None
        member.merge_fields.update({k: "" if v is None else v for k, v in merge.items()})
        return h, False

    # -- endpoints: (status, payload) ---------------------------------------------------------

    def _get_ping(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"health_status": "Everything's Chimpy!"}

    def _get_lists(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        items, total = self._page(sorted(self.lists.values(), key=lambda a: a.id), query)
        return 200, {"lists": [{"id": a.id, "name": a.name} for a in items],
                     "total_items": total}

    def _get_list(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        subscribed = sum(m.status == "subscribed" for m in audience.members.values())
        return 200, {"id": audience.id, "name": audience.name,
                     "stats": {"member_count": subscribed}}

    def _post_list(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        members = body.get("members")
        if not isinstance(members, list):
            raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                          "validated.", [{"field": "members", "message": "required"}])
        if len(members) > LIMIT:
            raise Problem(400, "Invalid Resource", f"You may add or update at most {LIMIT} "
                          f"members per call; {len(members)} were sent.")
        unknown = sorted(set(body) - BATCH_FIELDS) + sorted(
            {f"members.{k}" for item in members if isinstance(item, dict)
             for k in item if k not in MEMBER_FIELDS})
        bad_tags = [item for item in members if isinstance(item, dict) and "tags" in item and (
            not isinstance(item["tags"], list)
            or not all(isinstance(t, str) and t.strip() for t in item["tags"]))]
        if unknown or bad_tags:
            raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                          "validated.",
                          [{"field": f, "message": "unknown field"} for f in unknown]
                          + [{"field": "members.tags", "message": "a list of tag names"}
                             for _ in bad_tags[:1]])
        update_existing = bool(body.get("update_existing", False))
        sync_tags = bool(body.get("sync_tags", False)) and update_existing
        skip_duplicates = query.get("skip_duplicate_check") == "true"
        skip_merge = query.get("skip_merge_validation") == "true"
        new, updated, errors, seen = [], [], [], set()
        for item in members:
            email = str(item.get("email_address") or "")
            h = subscriber_hash(email)
            if h in seen:
                if not skip_duplicates:
                    errors.append({"email_address": email, "error": f"{email} appears more "
                                   "than once in this request.", "error_code": "ERROR_GENERIC"})
                continue
            seen.add(h)
            try:
                h, created = self._upsert(audience, email, item, may_update=update_existing,
                                          skip_merge_validation=skip_merge)
            except Problem as problem:
                first = problem.errors[0] if problem.errors else {}
                errors.append({
                    "email_address": email, "error": problem.detail,
                    "error_code": "ERROR_CONTACT_EXISTS" if problem.title == "Member Exists"
                    else "ERROR_GENERIC",
                    "field": first.get("field", ""), "field_message": first.get("message", ""),
                })
                continue
            if sync_tags:
                for segment in audience.segments.values():
                    if segment.type == "static":
                        segment.members.discard(h)
            # Tags go on new and existing members alike, whatever their status (Mailchimp's
            # release note of 2022-01-24), creating a tag that does not exist yet.
            for name in item.get("tags") or []:
                tag = self._tag_named(audience, name, create=True)
                assert tag is not None
                tag.members.add(h)
            (new if created else updated).append(self._member_json(audience, h))
        return 200, {"new_members": new, "updated_members": updated, "errors": errors,
                     "total_created": len(new), "total_updated": len(updated),
                     "error_count": len(errors)}

    def _get_members(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        hashes = [h for h, m in audience.members.items()
                  if query.get("status") in (None, m.status)]
        items, total = self._page(hashes, query)
        return 200, {"members": [self._member_json(audience, h) for h in items],
                     "total_items": total}

    def _post_members(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        h, _ = self._upsert(audience, str(body.get("email_address") or ""), body,
                            may_update=False,
                            skip_merge_validation=query.get("skip_merge_validation") == "true")
        return 200, self._member_json(audience, h)

    def _existing(self, audience: Audience, member: str) -> str:
        h = self._hash_of(member)
        if h in audience.forgotten:
            raise Problem(400, "Forgotten Email Not Subscribed", "This contact was "
                          "permanently deleted and cannot be re-imported.")
        if h not in audience.members:
            raise Problem(404, "Resource Not Found", "The requested resource could not be "
                          "found.")
        return h

    def _get_member(self, query: dict[str, str], body: Any, list_id: str,
                    member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        return 200, self._member_json(audience, self._existing(audience, member))

    def _put_member(self, query: dict[str, str], body: Any, list_id: str,
                    member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        h = self._hash_of(member)
        known = audience.members.get(h)
        email = str(body.get("email_address") or (known.email if known else ""))
        if not email or subscriber_hash(email) != h:
            raise Problem(400, "Invalid Resource", "The email address does not match the "
                          "subscriber hash in the URL.")
        h, _ = self._upsert(audience, email, body,
                            skip_merge_validation=query.get("skip_merge_validation") == "true")
        return 200, self._member_json(audience, h)

    def _patch_member(self, query: dict[str, str], body: Any, list_id: str,
                      member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        h = self._existing(audience, member)
        self._upsert(audience, audience.members[h].email, body, may_create=False)
        return 200, self._member_json(audience, h)

    def _delete_member(self, query: dict[str, str], body: Any, list_id: str,
                       member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        h = self._existing(audience, member)
        found = audience.members[h]
        if not found.removable:
            raise Problem(405, "Method Not Allowed", f"{found.email} cannot be removed. "
                          "Please contact support.")
        if found.status != "archived":
            found.archived_from, found.status = found.status, "archived"
        return 204, None

    def _post_delete_permanent(self, query: dict[str, str], body: Any, list_id: str,
                               member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        self._forget(audience, self._existing(audience, member))
        return 204, None

    def _post_member_tags(self, query: dict[str, str], body: Any, list_id: str,
                          member: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        h = self._hash_of(member)
        if h not in audience.members:
            raise Problem(404, "Resource Not Found", "The requested resource could not be "
                          "found.")
        tags = body.get("tags")
        if not isinstance(tags, list) or not all(
                isinstance(t, dict) and t.get("name") and t.get("status") in
                ("active", "inactive") for t in tags):
            raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                          "validated.", [{"field": "tags", "message": "each tag needs a name "
                                          "and a status of active or inactive"}])
        for tag in tags:
            active = tag["status"] == "active"
            segment = self._tag_named(audience, str(tag["name"]), create=active)
            if segment is None:
                continue
            if active:
                segment.members.add(h)
            else:
                segment.members.discard(h)
        return 204, None

    def _get_segments(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        segments = [s for s in audience.segments.values()
                    if query.get("type") in (None, s.type)]
        items, total = self._page(segments, query)
        return 200, {"segments": [self._segment_json(audience, s) for s in items],
                     "list_id": audience.id, "total_items": total}

    def _post_segments(self, query: dict[str, str], body: Any, list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                          "validated.", [{"field": "name", "message": "required"}])
        if "static_segment" in body and "options" in body:
            raise Problem(400, "Invalid Resource", "static_segment cannot be combined with "
                          "options.")
        segment = Segment(next(self._ids), name, "static" if "static_segment" in body
                          else "saved")
        segment.members = {h for e in body.get("static_segment") or []
                           if (h := subscriber_hash(str(e))) in audience.members}
        audience.segments[segment.id] = segment
        return 200, self._segment_json(audience, segment)

    def _segment(self, audience: Audience, segment_id: str) -> Segment:
        segment = audience.segments.get(int(segment_id)) if segment_id.isdigit() else None
        if segment is None:
            raise Problem(404, "Resource Not Found", "The requested resource could not be "
                          "found.")
        return segment

    def _get_segment(self, query: dict[str, str], body: Any, list_id: str,
                     segment_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        return 200, self._segment_json(audience, self._segment(audience, segment_id))

    def _delete_segment(self, query: dict[str, str], body: Any, list_id: str,
                        segment_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        del audience.segments[self._segment(audience, segment_id).id]
        return 204, None

    def _post_segment(self, query: dict[str, str], body: Any, list_id: str,
                      segment_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        segment = self._segment(audience, segment_id)
        if segment.type != "static":
            raise Problem(400, "Invalid Resource", "Only static segments can be changed "
                          "member by member.")
        add, remove = body.get("members_to_add") or [], body.get("members_to_remove") or []
        for name, emails in (("members_to_add", add), ("members_to_remove", remove)):
            if len(emails) > LIMIT:
                raise Problem(400, "Invalid Resource", f"{name} takes at most {LIMIT} "
                              f"emails; {len(emails)} were sent.")
        added, removed = [], []
        problems: dict[str, list[str]] = {}
        for email in add:
            h = subscriber_hash(str(email))
            if h not in audience.members:
                continue  # "Emails not on the list are ignored."
            if h in segment.members:
                problems.setdefault("Email address is already a member of this segment",
                                    []).append(email)
                continue
            segment.members.add(h)
            added.append(self._member_json(audience, h))
        for email in remove:
            h = subscriber_hash(str(email))
            if h not in audience.members:
                continue
            if h not in segment.members:
                problems.setdefault("Email address is not a member of this segment",
                                    []).append(email)
                continue
            segment.members.discard(h)
            removed.append(self._member_json(audience, h))
        errors = [{"email_addresses": emails, "error": message}
                  for message, emails in problems.items()]
        return 200, {"members_added": added, "members_removed": removed, "errors": errors,
                     "total_added": len(added), "total_removed": len(removed),
                     "error_count": sum(len(e) for e in problems.values())}

    def _get_segment_members(self, query: dict[str, str], body: Any, list_id: str,
                             segment_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        segment = self._segment(audience, segment_id)
        hashes = sorted(h for h in segment.members if h in audience.members)
        items, total = self._page(hashes, query)
        return 200, {"members": [self._member_json(audience, h) for h in items],
                     "total_items": total}

    def _get_tag_search(self, query: dict[str, str], body: Any,
                        list_id: str) -> tuple[int, Any]:
        audience = self._audience(list_id)
        prefix = query.get("name", "").casefold()
        found = [{"id": s.id, "name": s.name} for s in audience.segments.values()
                 if s.type == "static" and s.name.casefold().startswith(prefix)]
        return 200, {"tags": found, "total_items": len(found)}


def partial(payload: Any, fields: str) -> Any:
    """``payload`` cut to Mailchimp's ``fields`` partial response: a comma-separated list of
    keys, with dots for keys inside sub-objects and inside each item of an array."""
    tree: dict[str, Any] = {}
    for path in filter(None, (f.strip() for f in fields.split(","))):
        node = tree
        for key in path.split("."):
            node = node.setdefault(key, {})

    def cut(value: Any, node: dict[str, Any]) -> Any:
        if isinstance(value, list):
            return [cut(item, node) for item in value]
        if not isinstance(value, dict) or not node:
            return value
        return {k: cut(v, node[k]) for k, v in value.items() if k in node}

    return cut(payload, tree)


def _json_reply(status: int, payload: Any) -> Reply:
    if status == 204:
        return Reply(204)
    return Reply(status, json.dumps(payload).encode())


def _problem_reply(problem: Problem) -> Reply:
    instance = str(uuid.uuid4())
    body: dict[str, Any] = {"type": ERRORS_DOC, "title": problem.title, "status": problem.status,
                            "detail": problem.detail, "instance": instance}
    if problem.errors:
        body["errors"] = problem.errors
    return Reply(problem.status, json.dumps(body).encode(), "application/problem+json",
                 {"X-Request-Id": instance,
                  "Link": f'<{ERRORS_DOC}>; rel="describedBy"'})


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops simultaneous connects (they come back a
    # second later), which would hide the very concurrency the fake is there to count.
    request_queue_size = 128
    daemon_threads = True


class _Handler(QuietHandler):
    """Reads one request, asks the fake, writes (or withholds) the reply."""

    # Headers and body go out in two writes (no ``wbufsize = -1`` here).
    fake: FakeMailchimp

    def _serve(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            reply = fake.handle(self.command, self.path, raw, self.headers.get("Authorization"))
            if reply.hang:
                time.sleep(reply.hang)
                # The client has given up by now; whatever is written goes nowhere.
                self.close_connection = True
            if reply.disconnect:
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.body:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.truncate:
                self.wfile.write(reply.body[:len(reply.body) // 2])
                self.close_connection = True
                return
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            fake._leave()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
