"""A strict fake of Klaviyo's JSON:API, served on 127.0.0.1 for connector and end-to-end tests.

What it models (reference: destinations.md §2 and §5), and how strictly:

* Transport: ``Authorization: Klaviyo-API-Key <key>`` (401 otherwise), a known ``revision``
  header (400 when missing or unknown), ``Content-Type: application/vnd.api+json`` on every
  body (415 otherwise), JSON:API envelopes (``data``, ``links.next`` cursors, 204 with no
  body) and JSON:API error documents with ``source.pointer``. Resources as revision 2026-07-15
  of ``klaviyo/openapi`` declares them: a list is ``{type, id, attributes: {name, created,
  updated, opt_in_process}, links}``, cut to a ``fields[list]`` sparse fieldset (an unknown
  field name is a 400), and profiles to ``fields[profile]``.
* Limits: page sizes (lists ≤ 10, profiles ≤ 100), ≤ 1000 ids per relationships call,
  ≤ 1000 profiles per subscribe job, ≤ 100 per unsubscribe job, ≤ 10,000 profiles or 5 MB
  per import job, 150 list creations a day; each refusal a 400 pointing at the array. An
  optional fixed-window rate limit per endpoint answers 429 with ``Retry-After`` (whole
  seconds) and sends ``RateLimit-*`` headers on other answers.
* Profiles: one per email and per phone; ``POST /api/profiles`` on a taken identifier is a
  409 ``duplicate_profile`` with ``meta.duplicate_profile_id``; phones must be E.164.
  ``hidden_from_search`` emails are missing from filtered searches (index lag).
* Bulk import jobs go ``queued → processing → complete`` as requests arrive (``job_steps``
  requests after creation), are applied when they complete, and report refused rows through
  ``import-errors`` (scripted with ``import_errors``, or a phone already on another profile).
* Consent: the subscribe job sets ``SUBSCRIBED`` and lifts suppressions (so a test can catch a
  client that sends an opted-out profile), and adds the profile to the job's list; the
  unsubscribe job unsubscribes. Both are logged in ``subscribe_jobs`` / ``unsubscribe_jobs``.
* Faults: scripted statuses or dropped connections matched by request number or by method
  and path, before the request takes effect or after it did. Every request is logged and
  every write (non-GET) counted in ``write_calls``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import phonenumbers
from fakes.server import Answer, Fault, JsonHandler, Logged, ScriptedFaults, Served

API_KEY = "pk_fake_klaviyo_0123456789"
JSONAPI = "application/vnd.api+json"
REVISIONS = frozenset({"2024-10-15", "2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
                       "2026-01-15", "2026-04-15", "2026-07-15"})
MAX_RELATIONSHIP_IDS = 1000
MAX_SUBSCRIBE = 1000
MAX_UNSUBSCRIBE = 100
MAX_IMPORT = 10_000
MAX_IMPORT_BYTES = 5 * 1024 * 1024
LIST_CREATE_DAILY_CAP = 150
ATTRIBUTES = ("email", "phone_number", "external_id", "first_name", "last_name", "organization",
              "title", "locale", "image")


class ApiError(Exception):
    """An error answer: status plus one JSON:API error object per problem."""

    def __init__(self, status: int, code: str, detail: str, pointer: str | None = None,
                 meta: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        self.status = status
        self.error: dict[str, Any] = {
            "id": f"err-{code}", "status": status, "code": code,
            "title": {400: "Invalid input.", 401: "Not authenticated.", 404: "Not found.",
                      409: "Conflict.", 415: "Unsupported media type.",
                      429: "Throttled."}.get(status, "Error."),
            "detail": detail, "source": {"pointer": pointer} if pointer else {},
            "links": {}, "meta": meta or {},
        }
        self.headers = headers or {}
        super().__init__(detail)


def is_e164(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\+[1-9]\d{6,14}", value):
        return False
    return phonenumbers.is_valid_number(phonenumbers.parse(value, None))


@dataclass
class Profile:
    id: str
    email: str | None = None
    phone_number: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    email_consent: str = "NEVER_SUBSCRIBED"
    suppression: list[str] = field(default_factory=list)
    sms_consent: str = "NEVER_SUBSCRIBED"


@dataclass
class KList:
    id: str
    name: str
    members: set[str] = field(default_factory=set)
    created: str = "2026-11-01T00:00:00+00:00"
    opt_in_process: str = "single_opt_in"


@dataclass
class ImportJob:
    id: str
    profiles: list[dict[str, Any]]
    lists: list[str]
    status: str = "queued"
    age: int = 0
    completed_count: int = 0
    failed_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class _Handler(JsonHandler):
    content_type = error_content_type = JSONAPI

    do_GET = do_POST = do_DELETE = do_PATCH = JsonHandler.serve


class KlaviyoFake(Served, ScriptedFaults):
    """The fake account's server; use as a context manager. ``url`` is its base URL."""

    handler = _Handler

    def __init__(self, *, api_key: str = API_KEY, job_steps: int = 2,
                 rate_limit: tuple[int, float] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.api_key = api_key
        self.job_steps = job_steps
        #: (requests, window seconds) allowed per endpoint; None: unlimited.
        self.rate_limit = rate_limit
        self.clock = clock
        self.profiles: dict[str, Profile] = {}
        self.lists: dict[str, KList] = {}
        self.jobs: dict[str, ImportJob] = {}
        self.subscribe_jobs: list[dict[str, Any]] = []
        self.unsubscribe_jobs: list[dict[str, Any]] = []
        self.lists_created_today = 0
        self.faults: list[Fault] = []
        self.hidden_from_search: set[str] = set()
        #: Emails an import job submission refuses outright (400 pointing at the profile).
        self.invalid_emails: set[str] = set()
        #: email → (code, detail): rows every import job refuses.
        self.import_errors: dict[str, tuple[str, str]] = {}
        self.log: list[Logged] = []
        self.write_calls = 0
        self._windows: dict[str, list[float]] = {}
        self._ids = 0
        self._lock = threading.RLock()

    # -- seeding and inspection ---------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:08d}"

    def add_profile(self, email: str | None = None, phone_number: str | None = None,
                    **state: Any) -> str:
        with self._lock:
            profile = Profile(self._new_id("01KPROF"), email, phone_number, **state)
            self.profiles[profile.id] = profile
            return profile.id

    def add_list(self, name: str) -> str:
        with self._lock:
            klist = KList(self._new_id("L"), name)
            self.lists[klist.id] = klist
            return klist.id

    def find_profile(self, email: str) -> Profile | None:
        with self._lock:
            return next((p for p in self.profiles.values() if p.email == email), None)

    def lists_named(self, name: str) -> list[KList]:
        with self._lock:
            return [klist for klist in self.lists.values() if klist.name == name]

    def members_of(self, name: str) -> set[str]:
        """Emails in the one list called ``name`` (empty when there is none)."""
        with self._lock:
            found = self.lists_named(name)
            assert len(found) <= 1, f"{len(found)} lists named {name!r}"
            if not found:
                return set()
            return {self.profiles[pid].email or self.profiles[pid].id for pid in found[0].members}

    def subscribed_emails(self) -> set[str]:
        """Every email a subscribe job was ever asked to subscribe."""
        with self._lock:
            return {p["email"] for job in self.subscribe_jobs for p in job["profiles"]}

    # -- the request cycle --------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        split = urlsplit(target)
        path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            entry, fault = self._arrive(method, path, query)
            try:
                body = self._check(method, headers, raw)
                entry.body = body
                if fault is not None and not fault.after:
                    return self._fault(entry, fault)
                pattern, view, args = self._resolve(method, path)
                limit_headers = self._limit(f"{method} {pattern}")
                self._tick()
                status, payload = view(*args, query=query, body=body, size=len(raw),
                                       method=method)
            except ApiError as exc:
                entry.status = exc.status
                return exc.status, {"errors": [exc.error]}, exc.headers
            if fault is not None:
                return self._fault(entry, fault)
            entry.status = status
            return status, payload, limit_headers

    def _fault(self, entry: Logged, fault: Fault) -> Answer:
        entry.fault = fault.describe()
        if fault.drop:
            return 0, None, {}
        entry.status = fault.status
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        code = "throttled" if fault.status == 429 else "error"
        return fault.status, {"errors": [ApiError(fault.status, code, "injected fault").error]}, \
            headers

    def _check(self, method: str, headers: dict[str, str], raw: bytes) -> Any:
        if headers.get("authorization") != f"Klaviyo-API-Key {self.api_key}":
            raise ApiError(401, "not_authenticated",
                           "Missing or invalid private key.")
        revision = headers.get("revision")
        if revision is None:
            raise ApiError(400, "invalid", "The revision header is required.",
                           meta={"parameter": "revision"})
        if revision not in REVISIONS:
            raise ApiError(400, "invalid", f"{revision!r} is not a valid revision.")
        if not raw:
            return None
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != JSONAPI:
            raise ApiError(415, "unsupported_media_type",
                           f"Content-Type must be {JSONAPI}, not {content_type or 'missing'}.")
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid", "Malformed JSON body.") from None

    def _limit(self, group: str) -> dict[str, str]:
        """Count the request against its endpoint's window (Klaviyo limits per endpoint)."""
        if self.rate_limit is None:
            return {}
        allowed, window = self.rate_limit
        now = self.clock()
        state = self._windows.setdefault(group, [now, 0])
        if now - state[0] >= window:
            state[0], state[1] = now, 0
        reset = max(1, math.ceil(state[0] + window - now))
        if state[1] >= allowed:
            raise ApiError(429, "throttled", f"Request was throttled. Expected available in "
                           f"{reset} second.", headers={"Retry-After": str(reset)})
        state[1] += 1
        return {"RateLimit-Limit": str(allowed), "RateLimit-Remaining": str(allowed - state[1]),
                "RateLimit-Reset": str(reset)}

    def _tick(self) -> None:
        """Time passes as requests arrive: every unfinished job moves one step."""
        for job in self.jobs.values():
            if job.status in ("queued", "processing"):
                job.age += 1
                if job.age >= self.job_steps:
                    self._run_import(job)
                else:
                    job.status = "processing"

    # -- routes -------------------------------------------------------------------------------

    def _resolve(self, method: str, path: str) -> tuple[str, Callable[..., Any], tuple]:
        """The endpoint pattern, its view and the path's captured ids."""
        routes: list[tuple[str, str, Callable[..., tuple[int, dict[str, Any] | None]]]] = [
            ("GET", r"/api/lists", self._get_lists),
            ("POST", r"/api/lists", self._create_list),
            ("GET", r"/api/lists/([^/]+)", self._get_list),
            ("GET", r"/api/lists/([^/]+)/profiles", self._list_profiles),
            ("POST", r"/api/lists/([^/]+)/relationships/profiles", self._relate),
            ("DELETE", r"/api/lists/([^/]+)/relationships/profiles", self._relate),
            ("GET", r"/api/profiles", self._search_profiles),
            ("POST", r"/api/profiles", self._create_profile),
            ("GET", r"/api/profiles/([^/]+)", self._get_profile),
            ("GET", r"/api/profile-bulk-import-jobs", self._get_jobs),
            ("POST", r"/api/profile-bulk-import-jobs", self._create_job),
            ("GET", r"/api/profile-bulk-import-jobs/([^/]+)", self._get_job),
            ("GET", r"/api/profile-bulk-import-jobs/([^/]+)/import-errors", self._job_errors),
            ("POST", r"/api/profile-subscription-bulk-create-jobs", self._subscribe),
            ("POST", r"/api/profile-subscription-bulk-delete-jobs", self._unsubscribe),
        ]
        for route_method, pattern, view in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return pattern, view, match.groups()
        raise ApiError(404, "not_found", f"{method} {path} is not an endpoint.")

    def _page(self, items: list[dict[str, Any]], path: str, query: dict[str, str],
              default: int, maximum: int) -> dict[str, Any]:
        size = int(query.get("page[size]", default))
        if not 1 <= size <= maximum:
            raise ApiError(400, "invalid", f"page[size] must be between 1 and {maximum}.",
                           meta={"parameter": "page[size]"})
        cursor = query.get("page[cursor]")
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        document: dict[str, Any] = {"data": items[start:start + size],
                                    "links": {"self": f"{self.url}{path}", "next": None}}
        if start + size < len(items):
            nxt = dict(query, **{"page[cursor]": base64.urlsafe_b64encode(
                str(start + size).encode()).decode()})
            document["links"]["next"] = f"{self.url}{path}?{urlencode(nxt)}"
        return document

    @staticmethod
    def _filter(query: dict[str, str], allowed: set[str]) -> tuple[str, list[Any]] | None:
        text = query.get("filter")
        if text is None:
            return None
        match = re.fullmatch(r"(equals|any)\((\w+),(.*)\)", text)
        try:
            value = json.loads(match.group(3)) if match else None
        except ValueError:
            value = None
        if match is None or match.group(2) not in allowed or value is None or (
                match.group(1) == "any") != isinstance(value, list):
            raise ApiError(400, "invalid", f"Invalid filter {text!r}.",
                           meta={"parameter": "filter"})
        return match.group(2), value if isinstance(value, list) else [value]

    def _data(self, body: Any, kind: str, pointer: str = "/data") -> dict[str, Any]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != kind:
            raise ApiError(400, "invalid", f"Expected a {kind} resource.", pointer)
        return data

    def _list_view(self, klist: KList, query: dict[str, str]) -> dict[str, Any]:
        """A list resource (revision 2026-07-15), cut to ``fields[list]`` when asked."""
        attributes = {"name": klist.name, "created": klist.created, "updated": klist.created,
                      "opt_in_process": klist.opt_in_process}
        wanted = query.get("fields[list]")
        if wanted is not None:
            names = wanted.split(",")
            unknown = sorted(set(names) - set(attributes))
            if unknown:
                raise ApiError(400, "invalid", f"{', '.join(unknown)} is not a valid field "
                               "for the resource 'list'.", meta={"parameter": "fields[list]"})
            attributes = {k: v for k, v in attributes.items() if k in names}
        return {"type": "list", "id": klist.id, "attributes": attributes,
                "links": {"self": f"{self.url}/api/lists/{klist.id}"}}

    def _profile_view(self, profile: Profile, query: dict[str, str]) -> dict[str, Any]:
        attributes: dict[str, Any] = {"email": profile.email,
                                      "phone_number": profile.phone_number,
                                      **{k: profile.attributes.get(k) for k in ATTRIBUTES[2:]},
                                      "location": dict(profile.location),
                                      "properties": dict(profile.properties)}
        wanted = query.get("fields[profile]")
        if wanted:
            attributes = {k: v for k, v in attributes.items() if k in wanted.split(",")}
        if "subscriptions" in query.get("additional-fields[profile]", "").split(","):
            attributes["subscriptions"] = {
                "email": {"marketing": {
                    "can_receive_email_marketing": profile.email_consent == "SUBSCRIBED"
                    and not profile.suppression,
                    "consent": profile.email_consent,
                    "suppression": [{"reason": r, "timestamp": "2026-01-01T00:00:00+00:00"}
                                    for r in profile.suppression],
                    "list_suppressions": []}},
                "sms": {"marketing": {
                    "can_receive_sms_marketing": profile.sms_consent == "SUBSCRIBED",
                    "consent": profile.sms_consent}}}
        return {"type": "profile", "id": profile.id, "attributes": attributes,
                "links": {"self": f"{self.url}/api/profiles/{profile.id}"}}

    def _lookup_list(self, list_id: str) -> KList:
        klist = self.lists.get(list_id)
        if klist is None:
            raise ApiError(404, "not_found", f"A list with id {list_id} does not exist.")
        return klist

    def _get_lists(self, *, query: dict[str, str], **_: Any) -> tuple[int, dict[str, Any]]:
        wanted = self._filter(query, {"name", "id"})
        found = [self._list_view(k, query) for k in self.lists.values()
                 if wanted is None or getattr(k, wanted[0]) in wanted[1]]
        return 200, self._page(found, "/api/lists", query, 10, 10)

    def _create_list(self, *, body: Any, query: dict[str, str],
                     **_: Any) -> tuple[int, dict[str, Any]]:
        name = (self._data(body, "list").get("attributes") or {}).get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "invalid", "A list needs a name.", "/data/attributes/name")
        if self.lists_created_today >= LIST_CREATE_DAILY_CAP:
            raise ApiError(429, "throttled", "List creation is limited to 150 a day.",
                           headers={"Retry-After": "86400"})
        self.lists_created_today += 1
        # Klaviyo happily creates a second list with the same name: the client must look first.
        klist = KList(self._new_id("L"), name)
        self.lists[klist.id] = klist
        return 201, {"data": self._list_view(klist, query)}

    def _get_list(self, list_id: str, *, query: dict[str, str],
                  **_: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"data": self._list_view(self._lookup_list(list_id), query)}

    def _list_profiles(self, list_id: str, *, query: dict[str, str],
                       **_: Any) -> tuple[int, dict[str, Any]]:
        klist = self._lookup_list(list_id)
        found = [self._profile_view(self.profiles[pid], query) for pid in sorted(klist.members)]
        return 200, self._page(found, f"/api/lists/{list_id}/profiles", query, 20, 100)

    def _relate(self, list_id: str, *, body: Any, method: str,
                **_: Any) -> tuple[int, None]:
        klist = self._lookup_list(list_id)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise ApiError(400, "invalid", "Expected a non-empty array of profiles.", "/data")
        if len(data) > MAX_RELATIONSHIP_IDS:
            raise ApiError(400, "invalid", f"At most {MAX_RELATIONSHIP_IDS} profiles per "
                           "request.", "/data")
        for i, item in enumerate(data):
            if not isinstance(item, dict) or item.get("type") != "profile" \
                    or item.get("id") not in self.profiles:
                raise ApiError(400, "invalid", f"Profile {item!r} does not exist.",
                               f"/data/{i}/id")
        ids = {item["id"] for item in data}
        if method == "POST":
            klist.members |= ids
        else:
            klist.members -= ids
        return 204, None

    def _search_profiles(self, *, query: dict[str, str], **_: Any) -> tuple[int, dict[str, Any]]:
        wanted = self._filter(query, {"email", "phone_number", "id"})
        found = [self._profile_view(p, query) for p in self.profiles.values()
                 if p.email not in self.hidden_from_search
                 and (wanted is None or getattr(p, wanted[0]) in wanted[1])]
        return 200, self._page(found, "/api/profiles", query, 20, 100)

    def _get_profile(self, profile_id: str, *, query: dict[str, str],
                     **_: Any) -> tuple[int, dict[str, Any]]:
        profile = self.profiles.get(profile_id)
        if profile is None:
            raise ApiError(404, "not_found", f"A profile with id {profile_id} does not exist.")
        return 200, {"data": self._profile_view(profile, query)}

    def _create_profile(self, *, body: Any, query: dict[str, str],
                        **_: Any) -> tuple[int, dict[str, Any]]:
        attributes = self._data(body, "profile").get("attributes") or {}
        email, phone = attributes.get("email"), attributes.get("phone_number")
        if not email and not phone:
            raise ApiError(400, "invalid", "A profile needs an email or a phone number.",
                           "/data/attributes")
        if phone is not None and not is_e164(phone):
            raise ApiError(400, "invalid", f"Invalid phone number {phone!r}: not E.164.",
                           "/data/attributes/phone_number")
        for profile in self.profiles.values():
            if (email and profile.email == email) or (phone and profile.phone_number == phone):
                raise ApiError(409, "duplicate_profile",
                               "A profile already exists with one of these identifiers.",
                               "/data/attributes", meta={"duplicate_profile_id": profile.id})
        profile = Profile(self._new_id("01KPROF"), email, phone)
        self._set_fields(profile, attributes)
        self.profiles[profile.id] = profile
        return 201, {"data": self._profile_view(profile, query)}

    @staticmethod
    def _set_fields(profile: Profile, attributes: dict[str, Any]) -> None:
        for name in ATTRIBUTES[2:]:
            if name in attributes:
                profile.attributes[name] = attributes[name]
        profile.location.update(attributes.get("location") or {})
        profile.properties.update(attributes.get("properties") or {})

    # -- bulk import jobs ---------------------------------------------------------------------

    def _job_view(self, job: ImportJob) -> dict[str, Any]:
        return {"type": "profile-bulk-import-job", "id": job.id, "attributes": {
            "status": job.status, "total_count": len(job.profiles),
            "completed_count": job.completed_count, "failed_count": job.failed_count,
            "created_at": "2026-11-01T00:00:00+00:00", "started_at": None,
            "completed_at": None, "expires_at": "2026-11-08T00:00:00+00:00"},
            "links": {"self": f"{self.url}/api/profile-bulk-import-jobs/{job.id}"}}

    def _create_job(self, *, body: Any, size: int, **_: Any) -> tuple[int, dict[str, Any]]:
        data = self._data(body, "profile-bulk-import-job")
        pointer = "/data/attributes/profiles/data"
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not profiles:
            raise ApiError(400, "invalid", "Expected profiles.", pointer)
        if len(profiles) > MAX_IMPORT or size > MAX_IMPORT_BYTES:
            raise ApiError(400, "invalid", f"At most {MAX_IMPORT} profiles and 5 MB per job.",
                           pointer)
        for i, item in enumerate(profiles):
            attributes = item.get("attributes") if isinstance(item, dict) else None
            if not isinstance(attributes, dict) or item.get("type") != "profile" or not (
                    attributes.get("email") or attributes.get("phone_number")):
                raise ApiError(400, "invalid", "A profile needs an email or a phone number.",
                               f"{pointer}/{i}/attributes")
            phone = attributes.get("phone_number")
            if phone is not None and not is_e164(phone):
                raise ApiError(400, "invalid", f"Invalid phone number {phone!r}: not E.164.",
                               f"{pointer}/{i}/attributes/phone_number")
            if attributes.get("email") in self.invalid_emails:
                raise ApiError(400, "invalid", f"Invalid email address {attributes['email']!r}.",
                               f"{pointer}/{i}/attributes/email")
        lists = [ref["id"] for ref in (((data.get("relationships") or {}).get("lists") or {})
                                       .get("data") or [])]
        for list_id in lists:
            self._lookup_list(list_id)
        job = ImportJob(self._new_id("JOB"), [dict(p["attributes"]) for p in profiles], lists)
        self.jobs[job.id] = job
        return 202, {"data": self._job_view(job)}

    def _run_import(self, job: ImportJob) -> None:
        for i, attributes in enumerate(job.profiles):
            email, phone = attributes.get("email"), attributes.get("phone_number")
            scripted = self.import_errors.get(email or "")
            owner = next((p for p in self.profiles.values()
                          if phone and p.phone_number == phone and p.email != email), None)
            if scripted is None and owner is not None and email:
                scripted = ("conflict", f"Phone number {phone} belongs to another profile.")
            if scripted is not None:
                job.failed_count += 1
                job.errors.append({"type": "import-error", "id": f"{job.id}-{i}", "attributes": {
                    "code": scripted[0], "title": "Invalid profile.", "detail": scripted[1],
                    "source": {"pointer": f"/data/attributes/profiles/data/{i}"},
                    "original_payload": dict(attributes)}})
                continue
            profile = next((p for p in self.profiles.values()
                            if (email and p.email == email)
                            or (not email and p.phone_number == phone)), None)
            if profile is None:
                profile = Profile(self._new_id("01KPROF"), email)
                self.profiles[profile.id] = profile
            if phone:
                profile.phone_number = phone
            self._set_fields(profile, attributes)
            for list_id in job.lists:
                self.lists[list_id].members.add(profile.id)
            job.completed_count += 1
        job.status = "complete"

    def _get_jobs(self, *, query: dict[str, str], **_: Any) -> tuple[int, dict[str, Any]]:
        wanted = self._filter(query, {"status"})
        found = [self._job_view(j) for j in self.jobs.values()
                 if wanted is None or j.status in wanted[1]]
        return 200, self._page(found, "/api/profile-bulk-import-jobs", query, 20, 100)

    def _get_job(self, job_id: str, **_: Any) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"An import job with id {job_id} does not exist.")
        return 200, {"data": self._job_view(job)}

    def _job_errors(self, job_id: str, *, query: dict[str, str],
                    **_: Any) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"An import job with id {job_id} does not exist.")
        return 200, self._page(job.errors, f"/api/profile-bulk-import-jobs/{job_id}"
                                           "/import-errors", query, 20, 100)

    # -- consent ------------------------------------------------------------------------------

    def _consent_profiles(self, body: Any, kind: str, limit: int) -> tuple[list, str | None]:
        data = self._data(body, kind)
        pointer = "/data/attributes/profiles/data"
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not profiles:
            raise ApiError(400, "invalid", "Expected profiles.", pointer)
        if len(profiles) > limit:
            raise ApiError(400, "invalid", f"At most {limit} profiles per job.", pointer)
        for i, item in enumerate(profiles):
            phone = (item.get("attributes") or {}).get("phone_number")
            if phone is not None and not is_e164(phone):
                raise ApiError(400, "invalid", f"Invalid phone number {phone!r}: not E.164.",
                               f"{pointer}/{i}/attributes/phone_number")
        ref = ((data.get("relationships") or {}).get("list") or {}).get("data")
        list_id = ref.get("id") if isinstance(ref, dict) else None
        if list_id is not None:
            self._lookup_list(list_id)
        return profiles, list_id

    def _profile_for(self, item: dict[str, Any]) -> Profile:
        attributes = item.get("attributes") or {}
        email, phone = attributes.get("email"), attributes.get("phone_number")
        profile = self.profiles.get(item.get("id") or "") or next(
            (p for p in self.profiles.values()
             if (email and p.email == email) or (phone and p.phone_number == phone)), None)
        if profile is None:
            profile = Profile(self._new_id("01KPROF"), email, phone)
            self.profiles[profile.id] = profile
        elif phone and not profile.phone_number:
            profile.phone_number = phone
        return profile

    def _subscribe(self, *, body: Any, **_: Any) -> tuple[int, None]:
        profiles, list_id = self._consent_profiles(
            body, "profile-subscription-bulk-create-job", MAX_SUBSCRIBE)
        logged = []
        for item in profiles:
            profile = self._profile_for(item)
            channels = (item.get("attributes") or {}).get("subscriptions") or {}
            # Klaviyo's documented behaviour: subscribing lifts unsubscribes and suppressions.
            if "email" in channels:
                profile.email_consent = "SUBSCRIBED"
                profile.suppression.clear()
            if "sms" in channels:
                profile.sms_consent = "SUBSCRIBED"
            if list_id is not None:
                self.lists[list_id].members.add(profile.id)
            logged.append({"email": profile.email, "phone_number": profile.phone_number,
                           "channels": sorted(channels)})
        self.subscribe_jobs.append({"list": list_id, "profiles": logged})
        return 202, None

    def _unsubscribe(self, *, body: Any, **_: Any) -> tuple[int, None]:
        profiles, list_id = self._consent_profiles(
            body, "profile-subscription-bulk-delete-job", MAX_UNSUBSCRIBE)
        for item in profiles:
            profile = self._profile_for(item)
            profile.email_consent = "UNSUBSCRIBED"
            profile.suppression = ["UNSUBSCRIBE"]
        self.unsubscribe_jobs.append({"list": list_id, "count": len(profiles)})
        return 202, None
