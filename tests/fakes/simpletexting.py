"""A strict fake of SimpleTexting's API v2, served on 127.0.0.1 for connector and e2e tests.

What it models (reference: destinations.md §3.1 and §5), and how strictly:

* Transport: ``Authorization: Bearer <token>`` (401 with the vendor envelope otherwise),
  ``Content-Type: application/json`` on every body (415 otherwise), errors as
  ``application/problem+json`` with ``status``/``errorCode``/``message``/``errorDetails``.
* Shapes as the vendor's OpenAPI declares them (``openapi/_original/simpletexting-openapi.yml``
  of ``api-evangelist/simpletexting``, taken from api-doc.simpletexting.com): a list is
  ``{listId, name, created, updated, description, totalContactsCount, …}`` in
  ``GET /api/contact-lists`` and ``GET /api/contact-lists/{listIdOrName}``, while every create
  answers an ``ObjectIdDto`` ``{"id": …}``; a contact is ``{contactId, contactPhone, firstName,
  lastName, email, birthday, customFields, comment, subscriptionStatus, lists: [{id, name}],
  created, updated, updateSource}``; pages are ``{content, totalPages, totalElements}``; a
  batch-update task is read back with the 201 its spec declares.
* Lists by id **or name** in paths; ``POST /api/contact-lists`` happily creates a second list
  with a taken name (the client must look first) and refuses a name of 42 characters or more
  (the spec's "less than 42 characters"; the refusal's wording is the fake's); pages of at
  most 500.
* Contacts keyed by their 10-digit phone; anything else is "Invalid phone format".
* **The ``listsReplacement`` trap**: single upserts default ``upsert=true&listsReplacement=
  true`` and batch updates default ``listsReplacement: true``; a replacing write takes the
  contact out of every list it does not name.
* ``subscriptionStatus`` in a write is applied as sent (so a client that sends it could
  re-opt-in an ``OPT_OUT`` contact and a test catches it); a write without it never changes
  a contact's status, and new contacts start ``OPT_IN``.
* Batch-update tasks (≤ 500 updates) stay ``IN_PROGRESS`` for ``task_steps`` requests, are
  applied when ``DONE``, and report per-contact ``done``/``errorCode`` (scripted with
  ``contact_errors``: ``CONTACT_IMPORT_LIMIT_IS_REACHED`` and friends) while the task itself
  is ``DONE``.
* Faults: scripted statuses (429 without rate-limit headers, as SimpleTexting documents none;
  5xx) or dropped connections, matched by request number or method and path, before or after
  the request took effect. Every request is logged and every write counted in
  ``write_calls``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fakes.server import Answer, Fault, JsonHandler, Logged, ScriptedFaults, Served

TOKEN = "st_fake_token_0123456789"
PREFIX = "/v2"
MAX_BATCH = 500
MAX_PAGE = 500
#: "A list name containing less than 42 characters" (the spec's ListDto).
MAX_LIST_NAME = 41
CONTACT_FIELDS = ("firstName", "lastName", "email", "birthday", "comment", "customFields")


class ApiError(Exception):
    """An error answer in SimpleTexting's envelope."""

    def __init__(self, status: int, error_code: str, message: str,
                 details: list[str] | None = None):
        self.status = status
        self.payload = {
            "status": {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND",
                       415: "UNSUPPORTED_MEDIA_TYPE", 429: "TOO_MANY_REQUESTS"}.get(
                status, "INTERNAL_SERVER_ERROR"),
            "errorCode": error_code, "code": status, "message": message,
            "errorDetails": details or [], "path": "", "timestamp": "2026-11-01T00:00:00Z",
        }
        super().__init__(message)


def _now() -> str:
    """A timestamp as SimpleTexting writes them (ISO 8601, milliseconds, UTC)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Contact:
    id: str
    phone: str
    subscription_status: str = "OPT_IN"
    fields: dict[str, Any] = field(default_factory=dict)
    lists: set[str] = field(default_factory=set)
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    update_source: str = "MANUAL"


@dataclass
class CList:
    id: str
    name: str
    created: str = field(default_factory=_now)


@dataclass
class Task:
    id: str
    updates: list[dict[str, Any]]
    replace: bool
    status: str = "IN_PROGRESS"
    age: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


class _Handler(JsonHandler):
    error_content_type = "application/problem+json"

    do_GET = do_POST = do_DELETE = do_PUT = JsonHandler.serve


class SimpleTextingFake(Served, ScriptedFaults):
    """The fake account's server; use as a context manager. ``url`` is the API base URL."""

    handler = _Handler
    url_path = PREFIX

    def __init__(self, *, token: str = TOKEN, task_steps: int = 2):
        self.token = token
        self.task_steps = task_steps
        self.lists: dict[str, CList] = {}
        self.contacts: dict[str, Contact] = {}
        self.tasks: dict[str, Task] = {}
        #: 10-digit phone → (errorCode, message) every batch update answers for it.
        self.contact_errors: dict[str, tuple[str, str]] = {}
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.write_calls = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- seeding and inspection ---------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{next(self._ids):024x}"

    def add_list(self, name: str) -> str:
        with self._lock:
            clist = CList(self._new_id(), name)
            self.lists[clist.id] = clist
            return clist.id

    def add_contact(self, phone: str, *, lists: tuple[str, ...] = (),
                    status: str = "OPT_IN", **fields: Any) -> Contact:
        """Seed a contact (10-digit ``phone``) in ``lists`` (ids or names)."""
        with self._lock:
            contact = Contact(self._new_id(), phone, status, dict(fields),
                              {self._find_list(ref).id for ref in lists})
            self.contacts[phone] = contact
            return contact

    def contact(self, phone: str) -> Contact | None:
        """The contact with this 10-digit or +1 E.164 phone."""
        with self._lock:
            return self.contacts.get(phone.removeprefix("+1"))

    def lists_named(self, name: str) -> list[CList]:
        with self._lock:
            return [c for c in self.lists.values() if c.name == name]

    def members_of(self, name: str) -> set[str]:
        """E.164 phones in the one list called ``name`` (empty when there is none)."""
        with self._lock:
            found = self.lists_named(name)
            assert len(found) <= 1, f"{len(found)} lists named {name!r}"
            if not found:
                return set()
            return {f"+1{c.phone}" for c in self.contacts.values() if found[0].id in c.lists}

    # -- the request cycle --------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        split = urlsplit(target)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            entry, fault = self._arrive(method, path, query)
            try:
                body = self._check(headers, raw)
                entry.body = body
                if fault is not None and not fault.after:
                    return self._fault(entry, fault)
                self._tick()
                status, payload = self._route(method, path, query, body)
            except ApiError as exc:
                entry.status = exc.status
                return exc.status, dict(exc.payload, path=path), {}
            if fault is not None:
                return self._fault(entry, fault)
            entry.status = status
            return status, payload, {}

    def _fault(self, entry: Logged, fault: Fault) -> Answer:
        entry.fault = fault.describe()
        if fault.drop:
            return 0, None, {}
        entry.status = fault.status
        headers = {} if fault.retry_after is None else {
            "Retry-After": str(math.ceil(fault.retry_after))}
        return fault.status, ApiError(fault.status, "ERR_INJECTED", "injected fault").payload, \
            headers

    def _check(self, headers: dict[str, str], raw: bytes) -> Any:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "ERR_AUTH_TOKEN_MISSING", "Authentication token is missing")
        if auth.removeprefix("Bearer ") != self.token:
            raise ApiError(401, "ERR_AUTH_TOKEN_INVALID", "Authentication token is invalid")
        if not raw:
            return None
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/json":
            raise ApiError(415, "ERR_UNSUPPORTED_MEDIA_TYPE",
                           f"Content type '{content_type}' not supported")
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "ERR_MALFORMED_JSON", "Malformed JSON request") from None

    def _tick(self) -> None:
        """Time passes as requests arrive: every running task moves one step."""
        for task in self.tasks.values():
            if task.status == "IN_PROGRESS":
                task.age += 1
                if task.age >= self.task_steps:
                    self._run_task(task)

    # -- routes -------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str],
               body: Any) -> tuple[int, dict[str, Any] | None]:
        if not path.startswith(PREFIX + "/api/"):
            raise ApiError(404, "ERR_NOT_FOUND", f"No endpoint {path}")
        parts = path.removeprefix(PREFIX + "/api/").split("/")
        match method, parts:
            case "GET", ["contact-lists"]:
                return 200, self._page([self._list_view(c) for c in self.lists.values()],
                                       query)
            case "POST", ["contact-lists"]:
                name = body.get("name") if isinstance(body, dict) else None
                if not isinstance(name, str) or not name.strip():
                    raise ApiError(400, "ERR_VALIDATION", "name must not be blank")
                if len(name) > MAX_LIST_NAME:
                    raise ApiError(400, "ERR_VALIDATION",
                                   f"name must contain less than {MAX_LIST_NAME + 1} characters")
                # Not idempotent: a second list with the same name is created.
                return 201, {"id": self.add_list(name)}
            case "GET", ["contact-lists", ref]:
                return 200, self._list_view(self._find_list(ref))
            case "DELETE", ["contact-lists", ref, "contacts", who]:
                clist = self._find_list(ref)
                contact = self._find_contact(who)
                if clist.id not in contact.lists:
                    raise ApiError(404, "ERR_CONTACT_NOT_IN_LIST",
                                   f"Contact {who} is not in list {ref}")
                contact.lists.discard(clist.id)
                return 204, None
            case "GET", ["contacts"]:
                return 200, self._page([self._contact_view(c) for c in self.contacts.values()],
                                       query)
            case "POST", ["contacts"]:
                if not isinstance(body, dict):
                    raise ApiError(400, "ERR_VALIDATION", "a contact is required")
                # Both flags default to true: leaving listsReplacement out replaces lists.
                if query.get("upsert", "true") != "true" and \
                        str(body.get("contactPhone")) in self.contacts:
                    raise ApiError(400, "ERR_CONTACT_EXISTS", "Contact already exists")
                contact, error = self._upsert(body, query.get("listsReplacement", "true")
                                              == "true")
                if error is not None:
                    raise ApiError(400, "ERR_VALIDATION", error[1])
                assert contact is not None
                return 201, {"id": contact.id}
            case "POST", ["contacts-batch", "batch-update"]:
                updates = body.get("updates") if isinstance(body, dict) else None
                if not isinstance(updates, list) or not updates:
                    raise ApiError(400, "ERR_VALIDATION", "updates must not be empty")
                if len(updates) > MAX_BATCH:
                    raise ApiError(400, "ERR_VALIDATION",
                                   f"updates: size must be between 1 and {MAX_BATCH}")
                task = Task(self._new_id(), [dict(u) for u in updates],
                            body.get("listsReplacement", True) is not False)
                self.tasks[task.id] = task
                return 201, {"id": task.id}
            case "GET", ["contacts-batch", "batch-update", task_id]:
                task = self.tasks.get(task_id)
                if task is None:
                    raise ApiError(404, "ERR_TASK_NOT_FOUND", f"Task {task_id} not found")
                # The spec declares 201 for this read, not 200.
                return 201, {"status": task.status, "results": list(task.results),
                             "requestedCount": len(task.updates),
                             "processedCount": len(task.results)}
        raise ApiError(404, "ERR_NOT_FOUND", f"No endpoint {method} {path}")

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        page, size = int(query.get("page", 0)), int(query.get("size", 50))
        if not 1 <= size <= MAX_PAGE or page < 0:
            raise ApiError(400, "ERR_VALIDATION", f"size must be between 1 and {MAX_PAGE}")
        return {"content": items[page * size:(page + 1) * size],
                "totalPages": math.ceil(len(items) / size), "totalElements": len(items)}

    def _list_view(self, clist: CList) -> dict[str, Any]:
        """A ``List``: its id is ``listId`` here, unlike the ``id`` of the create answer."""
        members = [c for c in self.contacts.values() if clist.id in c.lists]
        active = sum(c.subscription_status == "OPT_IN" for c in members)
        unsubscribed = sum(c.subscription_status == "OPT_OUT" for c in members)
        return {"listId": clist.id, "name": clist.name, "created": clist.created,
                "updated": clist.created, "description": None,
                "totalContactsCount": len(members), "activeContactsCount": active,
                "invalidContactsCount": 0, "unsubscribedContactsCount": unsubscribed,
                "keywords": []}

    def _contact_view(self, contact: Contact) -> dict[str, Any]:
        """A ``Contact``: ``contactId``, the five required fields always present."""
        view: dict[str, Any] = {"contactId": contact.id, "contactPhone": contact.phone,
                                "firstName": None, "lastName": None, "email": None}
        view.update(contact.fields)
        view.update({
            "subscriptionStatus": contact.subscription_status,
            "lists": [{"id": i, "name": self.lists[i].name} for i in sorted(contact.lists)],
            "created": contact.created, "updated": contact.updated,
            "updateSource": contact.update_source})
        return view

    def _find_list(self, ref: str) -> CList:
        found = self.lists.get(ref) or next(
            (c for c in self.lists.values() if c.name == ref), None)
        if found is None:
            raise ApiError(404, "ERR_LIST_NOT_FOUND", f"List {ref} not found")
        return found

    def _find_contact(self, who: str) -> Contact:
        found = self.contacts.get(who) or next(
            (c for c in self.contacts.values() if c.id == who), None)
        if found is None:
            raise ApiError(404, "ERR_CONTACT_NOT_FOUND", f"Contact {who} not found")
        return found

    def _upsert(self, update: dict[str, Any],
                replace: bool) -> tuple[Contact | None, tuple[str, str] | None]:
        phone = str(update.get("contactPhone") or "")
        if not re.fullmatch(r"\d{10}", phone):
            return None, ("CONTACT_CREATE_FAILED", "Invalid phone format")
        try:
            list_ids = {self._find_list(str(ref)).id for ref in update.get("listIds") or []}
        except ApiError as exc:
            return None, ("CONTACT_UPDATE_FAILED", exc.payload["message"])
        contact = self.contacts.get(phone)
        if contact is None:
            contact = self.contacts[phone] = Contact(self._new_id(), phone,
                                                     update_source="PUBLIC_API")
        contact.updated, contact.update_source = _now(), "PUBLIC_API"
        for name in CONTACT_FIELDS:
            if name in update:
                contact.fields[name] = update[name]
        if "subscriptionStatus" in update:
            contact.subscription_status = str(update["subscriptionStatus"])
        contact.lists = list_ids if replace else contact.lists | list_ids
        return contact, None

    def _run_task(self, task: Task) -> None:
        for update in task.updates:
            phone = str(update.get("contactPhone") or "")
            error = self.contact_errors.get(phone)
            contact = None
            if error is None:
                contact, error = self._upsert(update, task.replace)
            result: dict[str, Any] = {"done": error is None, "contactPhone": phone,
                                      "contactId": contact.id if contact else None}
            if error is not None:
                result["errorCode"], result["errorMessage"] = error
            task.results.append(result)
        task.status = "DONE"
