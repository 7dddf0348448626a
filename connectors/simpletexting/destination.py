"""SimpleTexting lists as an SMS destination, keyed by E.164 phone.

Adds and updates go out as one batch-update task per batch (≤ 500 contacts), an upsert by
phone that also puts each contact in the target list. The request **always** says
``listsReplacement: false``: SimpleTexting's default replaces every list a contact is in with
the ones sent, which would silently pull people out of lists segsync does not manage. The
task's id is written to the :class:`~segsync.core.jobs.JobLedger`
before it is polled, so a replay adopts the task instead of starting a second one; its
per-contact results map back to people.

Removals leave the list one contact at a time (``DELETE /api/contact-lists/{list}/contacts/
{phone}``): the batch endpoint can only drop a list by replacing all of a contact's lists.

Before anything is sent, a person must have SMS consent ``SUBSCRIBED`` and a number
SimpleTexting can text: valid, North American (+1, sent as the 10 digits SimpleTexting
expects) and mobile by its numbering plan (``MOBILE`` or ``FIXED_LINE_OR_MOBILE``). Others are
rejected with the reason, which the engine keeps suppressed until the person changes. No
request carries ``subscriptionStatus``: a contact who opted out at SimpleTexting (``OPT_OUT``)
stays opted out whatever segsync sends.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from segsync.core.connector import Capabilities, Change, Destination, Outcome, Target
from segsync.core.errors import ConfigError, FatalError, RetriableError
from segsync.core.jobs import JobLedger

from .client import SimpleTextingClient, describe
from .config import SimpleTextingConfig

#: segsync field → SimpleTexting contact field.
CONTACT_FIELDS = {"first_name": "firstName", "last_name": "lastName", "email": "email",
                  "birthday": "birthday"}
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
SYNC_OPTIONS = frozenset({"list_id"})
#: SimpleTexting's limit: "a list name containing less than 42 characters".
MAX_LIST_NAME = 41
#: Per-contact task errors that may clear without the contact changing (a server fault, the
#: account's contact limit); any other error code is a refusal of the contact itself.
TRANSIENT_ERRORS = frozenset({"CONTACT_CREATE_INTERNAL_ERROR", "CONTACT_UPDATE_INTERNAL_ERROR",
                              "CONTACT_IMPORT_LIMIT_IS_REACHED"})
#: How long a remembered task may be adopted by a replayed batch (a crashed run and the next).
LEDGER_TTL = dt.timedelta(days=1)


def _number(key: str) -> phonenumbers.PhoneNumber | None:
    """``key`` parsed as a valid E.164 number, or None."""
    try:
        number = phonenumbers.parse(key, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def contact_phone(key: str) -> str | None:
    """The 10 digits SimpleTexting keys a North American contact by; None for other numbers."""
    number = _number(key)
    if number is None or number.country_code != 1:
        return None
    return str(number.national_number)


def refusal(change: Change) -> str | None:
    """Why SimpleTexting must not get this join or update, or None when it may."""
    # Defence in depth: whatever the sync's consent policy, texting needs an explicit opt-in.
    if change.consent != "SUBSCRIBED":
        return f"no SMS marketing consent ({change.consent or 'unknown'})"
    number = _number(change.key)
    if number is None:
        return f"{change.key} is not a valid phone number"
    if phonenumbers.number_type(number) not in MOBILE_TYPES:
        return "not a mobile number"
    if number.country_code != 1:
        return "SimpleTexting texts US and Canadian (+1) numbers only"
    return None


class SimpleTextingDestination(Destination):
    """Segment membership as SimpleTexting list membership; see the module docstring."""

    type_name = "simpletexting"
    Config = SimpleTextingConfig

    def __init__(self, name: str, config: SimpleTextingConfig, base_dir: Path):
        super().__init__(name, config, base_dir)
        self.config: SimpleTextingConfig
        self.client = SimpleTextingClient(config)
        self.ledger = JobLedger(Path(config.state_dir) / f"{name}.simpletexting-tasks.json",
                                "SimpleTexting")
        self._resumed = False
        self._resume_lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            identity="phone",
            max_batch=self.config.batch_size,
            max_concurrency=self.config.max_concurrency,
            can_remove=True,
            container="list",
            fields=tuple(CONTACT_FIELDS),
        )

    def check(self) -> list[str]:
        self.client.get("/api/contact-lists", {"page": 0, "size": 1})
        return [f"SimpleTexting at {self.config.base_url} accepted the token"]

    def close(self) -> None:
        self.client.close()

    # -- targets ------------------------------------------------------------------------------

    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        """The list ``options.list_id``, else the one list named ``name``, else a new one.

        Lists are matched by exact name over the paged listing rather than through
        ``/api/contact-lists/{listIdOrName}``, where a name could also read as another list's
        id. Creating is not idempotent, so a create whose answer was lost is found by the
        lookup of the retry instead of being repeated. A list read back carries its id as
        ``listId``; only the create's answer names it ``id``.
        """
        unknown = sorted(set(options) - SYNC_OPTIONS)
        if unknown:
            raise ConfigError(f"destination {self.name!r}: unknown sync option(s) "
                              f"{', '.join(unknown)} (known: {', '.join(sorted(SYNC_OPTIONS))})")
        self._resume()
        if options.get("list_id"):
            found = self.client.get(f"/api/contact-lists/{options['list_id']}")
            return Target(name, str(found["listId"]), dict(options))
        found = [str(item["listId"]) for item in self.client.pages("/api/contact-lists")
                 if item.get("name") == name]
        if len(found) > 1:
            raise ConfigError(f"destination {self.name!r}: {len(found)} SimpleTexting lists are "
                              f"named {name!r}; set the sync's options.list_id to choose one")
        if found:
            return Target(name, found[0], dict(options))
        if len(name) > MAX_LIST_NAME:
            # SimpleTexting would refuse the create; say which setting to change instead.
            raise ConfigError(f"destination {self.name!r}: SimpleTexting list names must be "
                              f"under {MAX_LIST_NAME + 1} characters; {name!r} has {len(name)} "
                              "(set the sync's target to a shorter name, or options.list_id)")
        created = self.client.request("POST", "/api/contact-lists", body={"name": name})
        return Target(name, str(created.json()["id"]), dict(options))

    def members(self, target: Target) -> list[str]:
        return sorted(
            phonenumbers.format_number(phonenumbers.parse(str(contact["contactPhone"]), "US"),
                                       phonenumbers.PhoneNumberFormat.E164)
            for contact in self.client.pages("/api/contacts")
            if any(str(item.get("id")) == target.remote_id for item in contact.get("lists") or [])
        )

    # -- batches ------------------------------------------------------------------------------

    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        self._resume()
        outcomes: dict[str, Outcome] = {}
        updates: dict[str, dict[str, Any]] = {}
        for change in changes:
            if change.op == "remove":
                continue
            reason = refusal(change)
            if reason is not None:
                outcomes[change.key] = Outcome(change.key, "rejected", reason)
                continue
            # listIds adds to the list (listsReplacement is false below); never a status.
            update: dict[str, Any] = {"contactPhone": contact_phone(change.key),
                                      "listIds": [target.remote_id]}
            for name, value in sorted(change.fields.items()):
                if value is not None and value != "":
                    update[CONTACT_FIELDS[name]] = str(value)
            updates[change.key] = update
        if updates:
            outcomes.update(self._batch_update(updates))
        for change in changes:
            if change.op == "remove":
                outcomes[change.key] = self._remove(target, change.key)
        return list(outcomes.values())

    def _batch_update(self, updates: dict[str, dict[str, Any]]) -> dict[str, Outcome]:
        """Upsert the contacts through one batch-update task; one outcome per key."""
        body = {"updates": list(updates.values()), "listsReplacement": False}
        digest = JobLedger.digest(body)
        while True:
            task_id = self.ledger.find(digest)
            if task_id is None:
                created = self.client.request("POST", "/api/contacts-batch/batch-update",
                                              body=body)
                task_id = str(created.json()["id"])
                self.ledger.record(digest, task_id)
            try:
                task = self._wait(task_id)
                break
            except FatalError as exc:
                if exc.status != 404:
                    raise
                # SimpleTexting no longer knows the remembered task: start a new one.
                self.ledger.forget(digest)
        # Results name contacts by the 10 digits sent, not by segsync's E.164 key.
        by_phone = {update["contactPhone"]: key for key, update in updates.items()}
        outcomes: dict[str, Outcome] = {}
        for result in task.get("results") or []:
            key = by_phone.get(str(result.get("contactPhone")))
            if key is None:
                continue
            code = result.get("errorCode")
            if result.get("done") and not code:
                outcomes[key] = Outcome(key, "ok")
            else:
                reason = f"{code or 'not done'}: {result.get('errorMessage') or ''}".rstrip(": ")
                status = "failed" if code in TRANSIENT_ERRORS or not code else "rejected"
                outcomes[key] = Outcome(key, status, reason)
        for key in updates:
            outcomes.setdefault(key, Outcome(key, "failed", f"task {task_id} has no result"))
        # Every contact has its answer; a replay of this batch must start a new task.
        self.ledger.forget(digest)
        return outcomes

    def _wait(self, task_id: str) -> dict[str, Any]:
        """Poll a batch-update task until it is DONE; the task."""
        deadline = time.monotonic() + self.config.task_timeout
        while True:
            task = self.client.get(f"/api/contacts-batch/batch-update/{task_id}")
            if task.get("status") == "DONE":
                return task
            if time.monotonic() >= deadline:
                raise RetriableError(
                    f"SimpleTexting task {task_id} is still {task.get('status')} after "
                    f"{self.config.task_timeout:g}s; it is picked up again on the next attempt")
            time.sleep(self.config.poll_interval)

    def _remove(self, target: Target, key: str) -> Outcome:
        phone = contact_phone(key)
        if phone is None:
            # A number SimpleTexting cannot hold was never added, so it is in no list.
            return Outcome(key, "ok")
        response = self.client.request(
            "DELETE", f"/api/contact-lists/{target.remote_id}/contacts/{phone}",
            accept=(400, 404, 422))
        if response.status_code in (400, 422):
            return Outcome(key, "rejected", describe(response))
        # 204, or 404: no such contact in the list, which is what a removal wants.
        return Outcome(key, "ok")

    # -- tasks left by an earlier run ---------------------------------------------------------

    def _resume(self) -> None:
        """Wait, once per process, for tasks an earlier run started and never saw end: a task
        still running could finish after a newer one and write older values over newer ones.
        Finished tasks stay in the ledger for a replayed batch to adopt until the TTL."""
        with self._resume_lock:
            if self._resumed:
                return
            self.ledger.resume(self._wait, LEDGER_TTL)
            self._resumed = True
