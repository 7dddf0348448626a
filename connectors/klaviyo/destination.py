"""Klaviyo lists as a destination, keyed by email.

One ``apply`` call takes a batch of at most 1000 changes through these steps, each an
idempotent write, so a replay after a timeout, a 429 or a crash converges:

1. **Upsert profiles** with a bulk import job (``profile-bulk-import-jobs``). The job's id is
   written to the :class:`~segsync.core.jobs.JobLedger` before it is polled;
   a replay of the same batch adopts the job instead of starting another. Rows the job
   refused (``import-errors``) become rejected outcomes.
2. **Resolve profile ids** by email (``GET /api/profiles?filter=any(email,…)``). A profile the
   search index does not show yet is created with ``POST /api/profiles``, whose 409
   ``duplicate_profile`` names the existing profile's id.
3. **Grant consent**, only through the subscribe job, only for a person whose local consent
   on that channel is ``SUBSCRIBED``, and only when Klaviyo says the profile never subscribed
   there and is not suppressed: the subscribe job lifts unsubscribes and suppressions, so a
   profile that opted out at Klaviyo is never flipped back, and one already subscribed is
   not sent again (which could repeat a double opt-in message).
4. **Set list membership** through ``/lists/{id}/relationships/profiles`` (POST to add,
   DELETE to remove; at most 1000 ids per call). Removal never touches consent.

A 400 whose ``source.pointer`` names an element of the request rejects that record and the
rest is re-sent; a 400 naming no record is left to the engine, which splits the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from segsync.core.connector import ANY_FIELD, Capabilities, Change, Destination, Outcome, Target
from segsync.core.errors import ConfigError, FatalError, RetriableError
from segsync.core.http import raise_for_status
from segsync.core.jobs import JobLedger

from .client import (
    KlaviyoClient,
    api_errors,
    describe,
    filter_any,
    filter_equals,
    pointed_indexes,
)
from .config import KlaviyoConfig

log = logging.getLogger("segsync.klaviyo")

#: Where Klaviyo points errors about one profile of a bulk or subscribe job, and about one
#: id of a relationships call.
PROFILES_POINTER = "/data/attributes/profiles/data"
IDS_POINTER = "/data"
#: Profile attributes Klaviyo keeps at the top level, and those inside ``location``; any
#: other synced field becomes a custom property.
PROFILE_ATTRIBUTES = frozenset({"first_name", "last_name", "phone_number", "external_id",
                                "organization", "title", "locale", "image"})
LOCATION_ATTRIBUTES = frozenset({"address1", "address2", "city", "region", "country", "zip",
                                 "timezone"})
#: A synced field carrying the person's SMS consent state (map it to
#: ``sms_subscription_status``): it decides SMS consent and is never stored on the profile.
SMS_CONSENT_FIELD = "sms_consent"
SYNC_OPTIONS = frozenset({"list_id", "subscribe"})
#: How long a remembered import job may be adopted by a replayed batch. It covers a crashed
#: run and the next scheduled one; older entries are dropped unread.
LEDGER_TTL = dt.timedelta(days=1)
#: Profiles a filtered ``GET /api/profiles`` returns per page (Klaviyo's maximum).
SEARCH_PAGE = 100
_UNFINISHED = ("queued", "processing")

Items = list[tuple[str, Any]]


@dataclass(frozen=True)
class _Profile:
    """A profile's id and marketing consent at Klaviyo (``None``: not known)."""

    id: str
    email_consent: str | None
    email_suppressed: bool
    sms_consent: str | None


def _profile(resource: dict[str, Any]) -> _Profile:
    attributes = resource.get("attributes") or {}
    subscriptions = attributes.get("subscriptions")
    if not isinstance(subscriptions, dict):
        return _Profile(resource["id"], None, False, None)
    email = (subscriptions.get("email") or {}).get("marketing") or {}
    sms = (subscriptions.get("sms") or {}).get("marketing") or {}
    return _Profile(resource["id"], email.get("consent"), bool(email.get("suppression")),
                    sms.get("consent"))


def e164(value: Any) -> str | None:
    """``value`` as an E.164 phone number, or None when it is not a valid one."""
    try:
        # No default region: only a number written with its country code is E.164.
        number = phonenumbers.parse(str(value), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def profile_attributes(change: Change) -> dict[str, Any]:
    """The import-job attributes of one change: email, known attributes, location and custom
    properties. Empty values are left out, so a blank in the store never erases Klaviyo's.
    A ``phone_number`` must have passed :func:`e164`."""
    attributes: dict[str, Any] = {"email": change.key}
    location: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, value in sorted(change.fields.items()):
        if value is None or value == "" or name == SMS_CONSENT_FIELD:
            continue
        if name == "phone_number":
            attributes[name] = e164(value)
        elif name in PROFILE_ATTRIBUTES:
            attributes[name] = value
        elif name in LOCATION_ATTRIBUTES:
            location[name] = value
        else:
            properties[name] = value
    if location:
        attributes["location"] = location
    if properties:
        attributes["properties"] = properties
    return attributes


def _drop_pointed(response: httpx.Response, items: Items,
                  prefix: str) -> tuple[Items, dict[str, str]]:
    """Split ``items`` into those a 400 did not point at and the rejected ones with reasons;
    a 400 pointing at none of them is raised for the engine to split the batch."""
    pointed = {i: m for i, m in pointed_indexes(response, prefix).items() if i < len(items)}
    if not pointed:
        raise_for_status(response, describe=describe)
    rejected = {items[i][0]: message for i, message in pointed.items()}
    return [item for i, item in enumerate(items) if i not in pointed], rejected


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


class KlaviyoDestination(Destination):
    """Segment membership as Klaviyo list membership; see the module docstring."""

    type_name = "klaviyo"
    Config = KlaviyoConfig

    def __init__(self, name: str, config: KlaviyoConfig, base_dir: Path):
        super().__init__(name, config, base_dir)
        self.config: KlaviyoConfig
        self.client = KlaviyoClient(config)
        self.ledger = JobLedger(Path(config.state_dir) / f"{name}.klaviyo-jobs.json", "Klaviyo")
        self._resumed = False
        self._resume_lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            identity="email",
            max_batch=self.config.batch_size,
            max_concurrency=self.config.max_concurrency,
            can_remove=True,
            container="list",
            fields=(ANY_FIELD,),
        )

    def check(self) -> list[str]:
        self.client.get("/api/lists", {"fields[list]": "name"})
        return [f"Klaviyo at {self.config.base_url} accepted the key (revision "
                f"{self.config.revision})"]

    def close(self) -> None:
        self.client.close()

    # -- targets ------------------------------------------------------------------------------

    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        """The list ``options.list_id``, else the one list named ``name``, else a new one.

        Creating is not idempotent at Klaviyo (and capped at 150 a day), so the name is looked
        up first; a create whose answer was lost is found by the lookup of the retry.
        """
        unknown = sorted(set(options) - SYNC_OPTIONS)
        if unknown:
            raise ConfigError(f"destination {self.name!r}: unknown sync option(s) "
                              f"{', '.join(unknown)} (known: {', '.join(sorted(SYNC_OPTIONS))})")
        if not isinstance(options.get("subscribe", True), bool):
            raise ConfigError(f"destination {self.name!r}: option subscribe must be true/false")
        self._resume()
        if options.get("list_id"):
            list_id = str(options["list_id"])
            self.client.get(f"/api/lists/{list_id}", {"fields[list]": "name"})
            return Target(name, list_id, dict(options))
        found = [resource["id"] for resource in self.client.pages(
                     "/api/lists", {"filter": filter_equals("name", name), "fields[list]": "name"})
                 if (resource.get("attributes") or {}).get("name") == name]
        if len(found) > 1:
            raise ConfigError(f"destination {self.name!r}: {len(found)} Klaviyo lists are named "
                              f"{name!r}; set the sync's options.list_id to choose one")
        if found:
            return Target(name, found[0], dict(options))
        created = self.client.request(
            "POST", "/api/lists", body={"data": {"type": "list", "attributes": {"name": name}}})
        return Target(name, created.json()["data"]["id"], dict(options))

    def members(self, target: Target) -> list[str]:
        return sorted(
            str((resource.get("attributes") or {}).get("email") or "").lower()
            for resource in self.client.pages(f"/api/lists/{target.remote_id}/profiles",
                                              {"fields[profile]": "email", "page[size]": 100})
        )

    # -- batches ------------------------------------------------------------------------------

    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        self._resume()
        upserts = [c for c in changes if c.op != "remove"]
        removes = [c for c in changes if c.op == "remove"]
        rejected: dict[str, str] = {}
        if upserts:
            rejected.update(self._upsert(target, upserts))
        if removes:
            found = self._lookup([c.key for c in removes], consent=False)
            # Someone Klaviyo has no profile for is in no list: nothing to remove.
            rejected.update(self._membership("DELETE", target,
                                             [(key, found[key].id) for key in sorted(found)]))
        return [Outcome(c.key, "rejected", rejected[c.key]) if c.key in rejected
                else Outcome(c.key, "ok") for c in changes]

    def _upsert(self, target: Target, changes: list[Change]) -> dict[str, str]:
        rejected: dict[str, str] = {}
        attributes: dict[str, dict[str, Any]] = {}
        for change in changes:
            phone = change.fields.get("phone_number")
            # Klaviyo refuses a whole job for one bad phone; refuse just its person up front.
            if phone not in (None, "") and e164(phone) is None:
                rejected[change.key] = f"phone_number {phone!r} is not a valid E.164 number"
            else:
                attributes[change.key] = profile_attributes(change)
        digest = None
        if attributes:
            digest, refused = self._import(attributes)
            rejected.update(refused)
        keys = [key for key in attributes if key not in rejected]
        found = self._lookup(keys, consent=True)
        for key in keys:
            if key not in found:
                found[key] = self._create(key)
        # Consent before membership: someone the subscribe job refuses must not be left in a
        # list the baseline will not know they are in.
        rejected.update(self._subscribe(target, changes, attributes, found, rejected))
        rejected.update(self._membership(
            "POST", target, [(key, found[key].id) for key in keys if key not in rejected]))
        if digest is not None:
            # Every step is confirmed; a replay of this batch must start a new job.
            self.ledger.forget(digest)
        return rejected

    def _import(self, attributes: dict[str, dict[str, Any]]) -> tuple[str | None, dict[str, str]]:
        """Upsert the profiles through one bulk import job; return its ledger digest and the
        keys Klaviyo refused, with reasons."""
        items: Items = [(key, {"type": "profile", "attributes": attrs})
                        for key, attrs in attributes.items()]
        rejected: dict[str, str] = {}
        while items:
            body = {"data": {"type": "profile-bulk-import-job",
                             "attributes": {"profiles": {"data": [e for _, e in items]}}}}
            # The digest covers exactly what is imported: only a replay of this very batch
            # adopts a remembered job.
            digest = JobLedger.digest(body)
            job_id = self.ledger.find(digest)
            if job_id is None:
                response = self.client.request("POST", "/api/profile-bulk-import-jobs",
                                               body=body, accept=(400,))
                if response.status_code == 400:
                    items, refused = _drop_pointed(response, items, PROFILES_POINTER)
                    rejected.update(refused)
                    continue
                job_id = str(response.json()["data"]["id"])
                self.ledger.record(digest, job_id)
            try:
                job = self._wait(job_id)
            except FatalError as exc:
                if exc.status != 404:
                    raise
                # Klaviyo no longer knows the remembered job (expired): start a new one.
                self.ledger.forget(digest)
                continue
            if job["status"] != "complete":
                # Cancelled: nothing is known to have landed, so the retry imports afresh.
                self.ledger.forget(digest)
                raise RetriableError(f"Klaviyo import job {job_id} ended {job['status']}")
            if job.get("failed_count"):
                rejected.update(self._import_errors(job_id, {key for key, _ in items}))
            return digest, rejected
        return None, rejected

    def _wait(self, job_id: str) -> dict[str, Any]:
        """Poll an import job until it leaves queued/processing; its attributes."""
        deadline = time.monotonic() + self.config.job_timeout
        while True:
            job = self.client.get(f"/api/profile-bulk-import-jobs/{job_id}")["data"]
            attributes = dict(job.get("attributes") or {})
            if attributes.get("status") not in _UNFINISHED:
                return attributes
            if time.monotonic() >= deadline:
                raise RetriableError(
                    f"Klaviyo import job {job_id} is still {attributes.get('status')} after "
                    f"{self.config.job_timeout:g}s; it is picked up again on the next attempt")
            time.sleep(self.config.poll_interval)

    def _import_errors(self, job_id: str, keys: set[str]) -> dict[str, str]:
        """The rows an import job refused, mapped back by their payload's email."""
        rejected = {}
        url = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        for resource in self.client.pages(url, {"page[size]": 100}):
            error = resource.get("attributes") or {}
            email = str((error.get("original_payload") or {}).get("email") or "").lower()
            if email in keys:
                detail = error.get("detail") or error.get("title")
                rejected[email] = f"{error.get('code')}: {detail}"
        return rejected

    def _lookup(self, emails: list[str], *, consent: bool) -> dict[str, _Profile]:
        """Profiles by email, with their consent when ``consent``."""
        found: dict[str, _Profile] = {}
        for chunk in _chunks(sorted(set(emails)), SEARCH_PAGE):
            params = {"filter": filter_any("email", chunk), "page[size]": SEARCH_PAGE}
            if consent:
                params["additional-fields[profile]"] = "subscriptions"
            else:
                params["fields[profile]"] = "email"
            wanted = set(chunk)
            for resource in self.client.pages("/api/profiles", params):
                email = str((resource.get("attributes") or {}).get("email") or "").lower()
                if email in wanted:
                    found[email] = _profile(resource)
        return found

    def _create(self, email: str) -> _Profile:
        """A profile the search does not show yet: create it, or learn the existing one's id
        from the 409 ``duplicate_profile`` (the search index lags behind imports)."""
        response = self.client.request(
            "POST", "/api/profiles",
            body={"data": {"type": "profile", "attributes": {"email": email}}}, accept=(409,))
        if response.status_code != 409:
            return _Profile(response.json()["data"]["id"], "NEVER_SUBSCRIBED", False,
                            "NEVER_SUBSCRIBED")
        duplicate = next((str(e["meta"]["duplicate_profile_id"]) for e in api_errors(response)
                          if e.get("code") == "duplicate_profile"
                          and (e.get("meta") or {}).get("duplicate_profile_id")), None)
        if duplicate is None:
            raise_for_status(response, describe=describe)
        resource = self.client.get(f"/api/profiles/{duplicate}",
                                   {"additional-fields[profile]": "subscriptions"})["data"]
        return _profile(resource)

    def _subscribe(self, target: Target, changes: list[Change],
                   attributes: dict[str, dict[str, Any]], found: dict[str, _Profile],
                   rejected: dict[str, str]) -> dict[str, str]:
        """Grant the consent each person sent gave locally and Klaviyo does not have yet."""
        if not target.options.get("subscribe", True):
            return {}
        items: Items = []
        for change in changes:
            if change.key in rejected or change.key not in found:
                continue
            remote = found[change.key]
            channels: dict[str, Any] = {}
            # Only a profile that never subscribed: an UNSUBSCRIBED one (or a suppressed one)
            # opted out at Klaviyo, and the subscribe job would lift that.
            if (change.consent == "SUBSCRIBED" and remote.email_consent == "NEVER_SUBSCRIBED"
                    and not remote.email_suppressed):
                channels["email"] = {"marketing": {"consent": "SUBSCRIBED"}}
            elif change.consent == "SUBSCRIBED" and remote.email_consent != "SUBSCRIBED":
                log.info("%s: not subscribed to email: Klaviyo has it %s%s", change.key,
                         remote.email_consent, " and suppressed" if remote.email_suppressed
                         else "")
            phone = attributes[change.key].get("phone_number")
            if (phone and change.fields.get(SMS_CONSENT_FIELD) == "SUBSCRIBED"
                    and remote.sms_consent == "NEVER_SUBSCRIBED"):
                channels["sms"] = {"marketing": {"consent": "SUBSCRIBED"}}
            if not channels:
                continue
            profile: dict[str, Any] = {"email": change.key, "subscriptions": channels}
            if "sms" in channels:
                profile["phone_number"] = phone
            items.append((change.key, {"type": "profile", "id": remote.id,
                                       "attributes": profile}))
        if not items:
            return {}
        list_ref = {"list": {"data": {"type": "list", "id": target.remote_id}}}
        return self._send_all(
            "POST", "/api/profile-subscription-bulk-create-jobs", items,
            lambda data: {"data": {"type": "profile-subscription-bulk-create-job",
                                   "attributes": {"custom_source": "segsync",
                                                  "profiles": {"data": data}},
                                   "relationships": list_ref}},
            PROFILES_POINTER)

    def _membership(self, method: str, target: Target,
                    ids: list[tuple[str, str]]) -> dict[str, str]:
        """Add (POST) or remove (DELETE) profile ids; rejected keys with reasons."""
        if not ids:
            return {}
        return self._send_all(
            method, f"/api/lists/{target.remote_id}/relationships/profiles",
            [(key, {"type": "profile", "id": profile_id}) for key, profile_id in ids],
            lambda data: {"data": data}, IDS_POINTER)

    def _send_all(self, method: str, url: str, items: Items,
                  wrap: Callable[[list[Any]], Any], prefix: str) -> dict[str, str]:
        """Send ``items`` in one call; records a 400 points at are rejected and the rest
        re-sent, so one bad record costs one extra call rather than the batch."""
        rejected: dict[str, str] = {}
        while items:
            response = self.client.request(method, url, body=wrap([e for _, e in items]),
                                           accept=(400,))
            if response.status_code != 400:
                break
            items, refused = _drop_pointed(response, items, prefix)
            rejected.update(refused)
        return rejected

    # -- jobs left by an earlier run ----------------------------------------------------------

    def _resume(self) -> None:
        """Wait, once per process, for import jobs an earlier run started and never saw end.

        A job still running could finish after a newer job for the same profiles and write
        older values over newer ones, so nothing new is sent before it is done. Finished jobs
        stay in the ledger for a replayed batch to adopt until :data:`LEDGER_TTL`.
        """
        with self._resume_lock:
            if self._resumed:
                return
            self.ledger.resume(self._wait, LEDGER_TTL)
            self._resumed = True
