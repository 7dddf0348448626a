"""Mailchimp as a destination: segment membership as a tag in one audience.

One ``apply`` handles one batch of at most 500 changes in as few calls as Mailchimp allows:

1. **Who may be written to** — before the first upsert of a run, the audience's unsubscribed,
   cleaned and archived contacts are read (``GET /lists/{id}/members?status=…``, 1000 a
   page, addresses only) and kept for the run. Such a contact is ``rejected`` with the reason
   and nothing at all is sent for them: no upsert that could resubscribe or unarchive them,
   and no tag, which batch subscribe would put on any existing contact, whatever their status.
2. **Contacts, merge fields and joins** — every add and update goes into one batch subscribe
   (``POST /lists/{id}``, ``update_existing``) whose members carry ``status_if_new`` and
   never ``status``, so a new contact gets the status their consent allows and an existing
   one keeps theirs. An add also carries ``tags: [the tag's name]``, which Mailchimp adds to
   new and existing members alike (since January 2022) without touching their other tags
   (``sync_tags`` is never sent): the contact and its membership in one call. Updates carry
   no tags. The answer says, per contact, with which status it ended up; refusals in
   ``errors[]`` (permanently deleted, compliance state, bad fields) are ``rejected``.
3. **Leaves** — one segment batch (``POST /lists/{id}/segments/{tag id}``,
   ``members_to_remove``, 500 a call): in Mailchimp a tag *is* a static segment.

So a batch costs one write call, and two only where the send order puts joins and leaves in
the same batch: a first sync of 50,000 people makes 1 + 100, a rerun with nothing changed none
(not even the reads, which happen only when something is upserted).

The race: a contact who unsubscribes (or is cleaned or archived) after the read and before
the batch subscribe is tagged by it. The answer reports their status, so they are
``rejected`` and removed from the tag again in the same ``apply``, in the segment batch of the
batch's leaves. Only when that answer is lost as well (a timeout on that very call) does the
tag stay on them; the contact is not resubscribed either way.

Every write declares a state (upsert by address, tag added, segment remove), so a batch
replayed after a timeout, a 5xx after the write landed or a crashed run converges to the same
audience. The tag itself is looked up by name before it is created, so ``ensure_target`` can
be repeated after any failure without creating a second one, and the target carries the name
as Mailchimp spells it, which is what batch subscribe's ``tags`` are matched against.
Mailchimp's asynchronous ``/batches`` endpoint is deliberately not used: it buys no fewer
calls than the 500-per-call endpoints above, replays its operations when re-submitted, and
would need a job id persisted outside the store to be resumed safely.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from segsync.core.connector import ANY_FIELD, Capabilities, Change, Destination, Outcome, Target
from segsync.core.errors import ConfigError, FatalError

from .client import BATCH_LIMIT, MailchimpClient
from .config import MailchimpConfig, SyncOptions

#: Existing contacts segsync leaves alone, with the reason the sync log shows.
REFUSED_STATUS = {
    "unsubscribed": "unsubscribed in Mailchimp: segsync never resubscribes a contact",
    "cleaned": "cleaned (bounced) in Mailchimp: segsync never resubscribes a contact",
    "archived": "archived in Mailchimp: segsync never unarchives a contact",
}
NO_CONSENT = "no email marketing consent: not created in Mailchimp (options.non_subscribed = skip)"


def merge_value(value: Any) -> Any:
    """A feature value as a merge field takes it: text, a number or an address object."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def member_body(change: Change, status_if_new: str, tag: str | None = None) -> dict[str, Any]:
    """One batch-subscribe member, carrying ``tag`` when it joins. Nulls are dropped so a
    missing value never blanks one Mailchimp already has; merge tags are upper case in
    Mailchimp, whatever the config says."""
    body: dict[str, Any] = {"email_address": change.key, "status_if_new": status_if_new}
    if tag is not None:
        body["tags"] = [tag]
    merge = {name.upper(): merge_value(value) for name, value in change.fields.items()
             if value is not None}
    if merge:
        body["merge_fields"] = merge
    return body


def refusal(error: dict[str, Any]) -> Outcome:
    """A batch-subscribe ``errors[]`` entry as an outcome.

    Batch answers carry no problem title, only Mailchimp's message, so the documented refusals
    are recognised by their wording; anything unrecognised is a permanent refusal of this
    record too (an invalid address, a bad merge field), except the temporary signup limit.
    """
    key = str(error.get("email_address", "")).strip().lower()
    message = str(error.get("error") or "refused")
    if error.get("field"):
        message += f" ({error['field']}: {error.get('field_message') or 'invalid'})"
    lowered = message.lower()
    if "permanently deleted" in lowered or "forgotten" in lowered:
        reason = f"permanently deleted in Mailchimp (Forgotten Email Not Subscribed): {message}"
    elif "compliance state" in lowered:
        reason = f"Member In Compliance State: {message}"
    elif "cleaned" in lowered:
        reason = f"{REFUSED_STATUS['cleaned']}: {message}"
    elif "a lot of lists" in lowered or error.get("error_code") == "ERROR_CONTACT_EXISTS":
        # Mailchimp's anti-abuse pause lifts by itself; a contact-exists error means the
        # upsert did not happen. Both are worth trying again next run.
        return Outcome(key, "failed", message)
    else:
        reason = message
    return Outcome(key, "rejected", reason)


class MailchimpDestination(Destination):
    """Pushes segment membership into one Mailchimp audience as a tag; see the module doc."""

    type_name = "mailchimp"
    Config = MailchimpConfig

    def __init__(self, name: str, config: MailchimpConfig, base_dir: Path, *,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(name, config, base_dir)
        self.config: MailchimpConfig
        self.client = MailchimpClient(config, transport=transport)
        self._list_id: str | None = config.audience_id
        self._lock = threading.Lock()
        #: The run's refused contacts (``_refused``); None until an upsert needs them.
        self._refused_now: dict[str, str] | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            identity="email",
            max_batch=BATCH_LIMIT,
            max_concurrency=self.config.max_concurrency,
            can_remove=True,
            container="tag",
            # Any merge tag the audience has (FNAME, LNAME, or the shop's own).
            fields=(ANY_FIELD,),
        )

    def close(self) -> None:
        self.client.close()

    # -- the audience and the tag -------------------------------------------------------------

    def list_id(self) -> str:
        """The audience's id, looked up by name once per run when only the name is given."""
        with self._lock:
            if self._list_id is None:
                wanted = self.config.audience
                found = [a for a in self.client.audiences() if a.get("name") == wanted]
                if not found:
                    raise ConfigError(f"destination {self.name!r}: no Mailchimp audience named "
                                      f"{wanted!r} (set audience_id, or fix audience)")
                if len(found) > 1:
                    ids = ", ".join(str(a["id"]) for a in found)
                    raise ConfigError(f"destination {self.name!r}: {len(found)} audiences are "
                                      f"named {wanted!r} ({ids}); set audience_id instead")
                self._list_id = str(found[0]["id"])
            return self._list_id

    def check(self) -> list[str]:
        self.client.ping()
        audience = self.client.audience(self.list_id())
        members = (audience.get("stats") or {}).get("member_count")
        return [f"audience {audience.get('name')!r} ({audience.get('id')}), "
                f"{members} subscribed contacts"]

    def find_tag(self, name: str) -> dict[str, Any] | None:
        """The audience's tag called ``name``, compared case-insensitively as Mailchimp does."""
        wanted = name.casefold()
        found = [t for t in self.client.tags(self.list_id())
                 if str(t.get("name", "")).casefold() == wanted]
        if len(found) > 1:
            # Someone else made duplicates; writing to either would split the audience.
            ids = ", ".join(str(t["id"]) for t in found)
            raise FatalError(f"{len(found)} Mailchimp tags are named {name!r} (segment ids "
                             f"{ids}); merge or delete all but one")
        return found[0] if found else None

    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        """Find the tag or create it. Safe to repeat after any failure: a create whose answer
        was lost is found by the lookup of the next attempt instead of being made twice."""
        parsed = SyncOptions.parse(options, self.name)
        # A sync starts here: statuses read for an earlier one may have changed since.
        with self._lock:
            self._refused_now = None
        tag = self.find_tag(name) or self.client.create_tag(self.list_id(), name)
        return Target(str(tag["name"]), str(tag["id"]), parsed.model_dump())

    # -- membership ---------------------------------------------------------------------------

    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        options = SyncOptions.model_validate(target.options)
        list_id = self.list_id()
        outcomes: dict[str, Outcome] = {}
        upserts: list[Change] = []
        bodies = []
        refused = self._refused(list_id) if any(c.op != "remove" for c in changes) else {}
        for change in changes:
            if change.op == "remove":
                continue
            status = self._status_if_new(change.consent, options)
            if status is None:
                outcomes[change.key] = Outcome(change.key, "rejected", NO_CONSENT)
                continue
            if change.key in refused:
                outcomes[change.key] = Outcome(change.key, "rejected",
                                               REFUSED_STATUS[refused[change.key]])
                continue
            upserts.append(change)
            bodies.append(member_body(change, status,
                                      target.name if change.op == "add" else None))
        untag = self._upsert(list_id, upserts, bodies, outcomes) if upserts else []
        leaving = [c.key for c in changes if c.op == "remove"]
        if leaving or untag:
            outcomes.update(self._segment_batch(list_id, target, leaving, untag))
        return list(outcomes.values())

    def _refused(self, list_id: str) -> dict[str, str]:
        """Address → status of every contact segsync must not write to, read once per run."""
        with self._lock:
            if self._refused_now is None:
                self._refused_now = {email: status for status in REFUSED_STATUS
                                     for email in self.client.member_emails(list_id, status)}
            return self._refused_now

    @staticmethod
    def _status_if_new(consent: str | None, options: SyncOptions) -> str | None:
        """``subscribed`` only with marketing consent; otherwise as configured, or None."""
        if consent == "SUBSCRIBED":
            return "subscribed"
        return "transactional" if options.non_subscribed == "transactional" else None

    def _upsert(self, list_id: str, changes: list[Change], bodies: list[dict[str, Any]],
                outcomes: dict[str, Outcome]) -> list[str]:
        """Batch-subscribe ``changes`` and record every outcome; return the adds that were
        tagged although the answer shows a status segsync must not tag (the race of the
        module doc), to be untagged at once."""
        answer = self.client.batch_subscribe(list_id, bodies)
        reported: dict[str, Outcome | None] = {}
        written_refused = set()  # upserted (so tagged, if an add) with a refused status
        for member in [*(answer.get("new_members") or []),
                       *(answer.get("updated_members") or [])]:
            key = str(member.get("email_address", "")).strip().lower()
            reason = REFUSED_STATUS.get(str(member.get("status")))
            reported[key] = Outcome(key, "rejected", reason) if reason else None
            if reason:
                written_refused.add(key)
        for error in answer.get("errors") or []:
            verdict = refusal(error)
            reported[verdict.key] = verdict
        untag = []
        for change in changes:
            if change.key not in reported:
                outcomes[change.key] = Outcome(change.key, "failed",
                                               "Mailchimp's batch answer did not mention it")
                continue
            verdict = reported[change.key]
            outcomes[change.key] = verdict or Outcome(change.key, "ok")
            if change.op == "add" and change.key in written_refused:
                untag.append(change.key)
        return untag

    def _segment_batch(self, list_id: str, target: Target, leaving: list[str],
                       untag: list[str]) -> dict[str, Outcome]:
        """One segment call for every leave of the batch, and the untagging of the race.

        Mailchimp skips addresses that are not in the audience and may or may not report an
        absent removal as an error; both leave the wanted state, so only other errors count.
        The untagged keep the ``rejected`` outcome their upsert got.
        """
        answer = self.client.segment_batch(list_id, str(target.remote_id), leaving + untag)
        errors: dict[str, str] = {}
        for error in answer.get("errors") or []:
            for email in error.get("email_addresses") or []:
                errors[str(email).strip().lower()] = str(error.get("error") or "refused")
        outcomes = {}
        for key in leaving:
            message = errors.get(key)
            if message is None or " not " in f" {message.lower()} ":
                outcomes[key] = Outcome(key, "ok")
            else:
                # A removal that did not happen must come back next run, never be suppressed.
                outcomes[key] = Outcome(key, "failed", message)
        return outcomes

    # -- reading back -------------------------------------------------------------------------

    def members(self, target: Target) -> list[str]:
        """Who is in the tag right now, for ``--reconcile``."""
        return sorted(set(self.client.segment_emails(self.list_id(), str(target.remote_id))))
