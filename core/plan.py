"""Planning one sync: who should be at the target, and what must change to get them there.

A plan compares two sets by key (the destination's identity: a normalised email or an E.164
phone):

* the **desired set**: members of the sync's segment with a valid key who pass the consent
  gate, one row per key, with the payload of synced fields and its hash;
* the **acknowledged baseline** (``sync_state``): what the destination confirmed, under which
  config hash and with which payload hash.

Keys whose last attempt is unconfirmed (``sync_outcomes`` with status ``pending`` after a crash
or ``failed`` after a transient error) are *in doubt*: the destination may or may not have
applied the write. The diff re-sends the desired state for them, and removes in-doubt keys that
are no longer desired, so an add that landed after the caller saw a timeout cannot leak.
Keys the destination *rejected* are not re-sent until their op, payload or config changes.

Everything is set-based SQL over temporary tables, so planning a million people costs a few
scans, not a million Python iterations, and ``segsync plan`` writes nothing to the store
(temporary tables live outside the database file). Guardrails turn removals into *held* ones
when a source pull failed or came back empty, or when removals exceed a share of the baseline.

When a sync's target (destination, destination type or target name) changes, the baseline
belongs to a target segsync no longer manages. Its members are **released**: left where they
are and reported, never removed, because the old list may be in use by someone else now and a
rename must not empty a list behind the marketer's back. The new target gets a full upload.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlite_utils import Database

from .attributes import CUSTOM_PREFIX
from .connector import Capabilities, Change, Destination
from .errors import ConfigError, SegsyncError
from .settings import SyncSettings

#: Consent states that mean "never send", whatever the sync's policy.
OPTED_OUT = ("UNSUBSCRIBED", "INVALID", "REDACTED")
#: The ``person_features`` consent column for each identity kind (email or SMS channel).
CONSENT_COLUMN = {"email": "email_subscription_status", "phone": "sms_subscription_status"}
#: In ``Capabilities.fields``: the destination accepts any field name (files, webhooks).
ANY_FIELD = "*"

# The consent gate per policy, as SQL over the column ``consent``; opt-outs are excluded before
# the gate is consulted, so ``not_opted_out`` lets everyone else (including unknown) through.
_GATES = {
    "subscribed": "consent = 'SUBSCRIBED'",
    "subscribed_or_pending": "consent IN ('SUBSCRIBED', 'PENDING')",
    "not_opted_out": "1",
}
_KEY_SQL = {
    "email": "CASE WHEN instr(f.email, '@') > 1 THEN f.email END",
    # E.164: a plus, a non-zero country digit, at most 15 digits in all.
    "phone": "CASE WHEN f.phone GLOB '+[1-9]*' AND f.phone NOT GLOB '+*[^0-9]*' "
    "AND length(f.phone) BETWEEN 8 AND 16 THEN f.phone END",
}
_REDIFF_REASON = "sync settings changed: full re-send"
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_]+")
_plan_ids = itertools.count(1)

ChangeClass = Literal["send", "held", "suppressed", "unchanged", "stale"]


def _sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def canonical_hash(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, no spaces), so equal configs hash
    equally however their dicts were ordered."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def target_name(sync: SyncSettings) -> str:
    """The sync's target at its destination: ``target``, or else the segment's name."""
    return sync.target or sync.segment


def config_hash(sync: SyncSettings, destination: Destination) -> str:
    """The hash baseline rows are acknowledged under.

    Besides the sync's own settings it covers the destination's type and validated config
    (secrets dump masked, so rotating a key changes nothing): pointing a destination at another
    folder, server or list must re-send everything, or the new place would stay empty while the
    baseline claims it is full.
    """
    return canonical_hash(
        {
            "segment": sync.segment,
            "destination": sync.destination,
            "destination_type": destination.type_name,
            "destination_config": destination.config.model_dump(mode="json"),
            "target": target_name(sync),
            "fields": sync.fields,
            "consent": sync.consent,
            "options": sync.options,
        }
    )


@dataclass
class PlannedChange:
    """A change, its place in send order, and why it was planned (for ``segsync plan``)."""

    seq: int
    change: Change
    reason: str | None


@dataclass
class Plan:
    """The diff for one sync, held in temporary tables of the store's connection.

    Counts are per key: ``adds``/``updates``/``removes`` will be sent, ``held`` removals are
    blocked by a guardrail, ``suppressed`` keys were rejected before and have not changed since,
    ``invalid`` counts segment members that cannot be sent (no key, consent, duplicate key),
    ``released`` baseline rows belong to a previous target. Use as a context manager, or call
    :meth:`close`, to drop the tables; push a plan at most once.
    """

    sync: str
    settings: SyncSettings
    destination: str
    destination_type: str
    target: str
    config_hash: str
    capabilities: Capabilities
    desired: int = 0
    baseline: int = 0
    adds: int = 0
    updates: int = 0
    removes: int = 0
    held: int = 0
    suppressed: int = 0
    unchanged: int = 0
    invalid: int = 0
    released: int = 0
    #: Adds re-sent because their baseline row was acknowledged under another config.
    rediff: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    held_reason: str | None = None
    #: ``destination:target`` the baseline belonged to, when the target changed.
    previous_target: str | None = None
    db: Database | None = field(default=None, repr=False)
    table: str = ""

    @property
    def to_send(self) -> int:
        return self.adds + self.updates + self.removes

    def summary(self) -> dict[str, Any]:
        """The plan as plain data, for ``segsync plan --json`` and the run summary."""
        return {
            "sync": self.sync,
            "destination": self.destination,
            "target": self.target,
            "desired": self.desired,
            "baseline": self.baseline,
            "adds": self.adds,
            "updates": self.updates,
            "removes": self.removes,
            "held": self.held,
            "held_reason": self.held_reason,
            "suppressed": self.suppressed,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "invalid_reasons": dict(self.invalid_reasons),
            "released": self.released,
            "previous_target": self.previous_target,
            "rediff": self.rediff,
        }

    def batches(
        self, size: int, classes: tuple[ChangeClass, ...] = ("send",)
    ) -> Iterator[list[PlannedChange]]:
        """Planned changes of ``classes`` in send order (adds, updates, removes; by key), in
        lists of at most ``size``.

        Pages by ``seq`` rather than holding a cursor open, because the executor writes to the
        same connection between pages.
        """
        db = self._db()
        marks = ",".join("?" for _ in classes)
        after = 0
        while True:
            rows = db.execute(
                f"SELECT seq, key, op, person_id, consent, payload, reason "
                f"FROM {self.table} WHERE class IN ({marks}) AND seq > ? ORDER BY seq LIMIT ?",
                [*classes, after, size],
            ).fetchall()
            if not rows:
                return
            yield [
                PlannedChange(
                    seq=seq,
                    change=Change(
                        key=key,
                        op=op,
                        person_id=person_id,
                        # Removals carry neither (both NULL): a removal needs only the key.
                        fields=json.loads(payload) if payload else {},
                        consent=consent,
                    ),
                    reason=reason,
                )
                for seq, key, op, person_id, consent, payload, reason in rows
            ]
            after = rows[-1][0]

    def changes(self, classes: tuple[ChangeClass, ...] = ("send",)) -> Iterator[Change]:
        """The planned changes of ``classes``, one by one (``held`` shows the held removals)."""
        for batch in self.batches(1000, classes):
            for planned in batch:
                yield planned.change

    def invalid_people(self, limit: int | None = None) -> list[tuple[int, str | None, str]]:
        """``(person_id, key, reason)`` for segment members who cannot be sent."""
        sql = (
            f"SELECT person_id, key, reason FROM {self.table}_people "
            "WHERE reason IS NOT NULL ORDER BY person_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [tuple(row) for row in self._db().execute(sql).fetchall()]

    def close(self) -> None:
        """Drop the plan's temporary tables; safe to call twice."""
        if self.db is None:
            return
        # ``_unconfirmed`` is the executor's scratch table for this plan.
        for suffix in ("", "_desired", "_people", "_unconfirmed"):
            self.db.execute(f"DROP TABLE IF EXISTS temp.{self.table}{suffix}")
        self.db = None

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> Database:
        if self.db is None:
            raise SegsyncError(f"the plan for sync {self.sync!r} is closed")
        return self.db


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _feature_columns(db: Database) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(person_features)").fetchall()}


def _payload_sql(
    name: str, sync: SyncSettings, caps: Capabilities, columns: set[str]
) -> tuple[str, dict[str, str]]:
    """``json_object(...)`` over the synced fields, checked against the destination and the
    feature columns; field names are bound as parameters, columns quoted."""
    if sync.fields and not caps.fields:
        raise ConfigError(
            f"syncs.{name}.fields: destination {sync.destination!r} syncs membership only; "
            "remove the fields"
        )
    parts: list[str] = []
    params: dict[str, str] = {}
    for i, (dest_field, feature) in enumerate(sorted(sync.fields.items())):
        if ANY_FIELD not in caps.fields and dest_field not in caps.fields:
            raise ConfigError(
                f"syncs.{name}.fields.{dest_field}: destination {sync.destination!r} has no "
                f"such field (it has: {', '.join(caps.fields)})"
            )
        if feature.startswith(CUSTOM_PREFIX) and "attributes" in columns:
            attr = feature[len(CUSTOM_PREFIX):]
            if not _ATTRIBUTE_NAME.fullmatch(attr):
                raise ConfigError(f"syncs.{name}.fields.{dest_field}: bad attribute {feature!r}")
            expr = f"json_extract(f.attributes, '$.{attr}')"
        elif feature in columns:
            expr = f"f.{_quote(feature)}"
        else:
            raise ConfigError(
                f"syncs.{name}.fields.{dest_field}: no person feature named {feature!r}"
            )
        params[f"f{i}"] = dest_field
        parts.append(f":f{i}, {expr}")
    return f"json_object({', '.join(parts)})", params


def plan_sync(
    db: Database,
    name: str,
    sync: SyncSettings,
    destination: Destination,
    *,
    removals_blocked: bool = False,
    allow_large_removals: bool = False,
    max_removal_share: float = 0.2,
) -> Plan:
    """Compute the plan for sync ``name`` without writing to the store or the destination.

    ``removals_blocked`` is set by the caller when a source pull failed or came back empty this
    run: every removal is then held, since an empty segment may only mean missing data.
    Otherwise removals above ``max_removal_share`` of the current baseline are held unless
    ``allow_large_removals``.
    """
    caps = destination.capabilities
    identity = caps.identity
    consent_column = CONSENT_COLUMN[identity]
    columns = _feature_columns(db)
    for needed in (identity, consent_column):
        if needed not in columns:
            raise SegsyncError(
                f"person_features has no column {needed!r}; run the features stage first"
            )
    payload_sql, field_params = _payload_sql(name, sync, caps, columns)
    cfg = config_hash(sync, destination)
    plan = Plan(
        sync=name,
        settings=sync,
        destination=sync.destination,
        destination_type=destination.type_name,
        target=target_name(sync),
        config_hash=cfg,
        capabilities=caps,
        db=db,
        table=f"segsync_plan_{next(_plan_ids)}",
    )
    db.conn.create_function("segsync_sha256", 1, _sha256, deterministic=True)
    try:
        _build(db, plan, sync, identity, consent_column, payload_sql, field_params)
        _guard(db, plan, removals_blocked, allow_large_removals, max_removal_share)
        _count(db, plan)
    except BaseException:
        plan.close()
        raise
    return plan


def _previous_target(db: Database, plan: Plan) -> str | None:
    """``destination:target`` when the baseline belongs to another target than this plan's."""
    row = db.execute(
        "SELECT destination, destination_type, target FROM sync_targets WHERE sync = ?",
        [plan.sync],
    ).fetchone()
    if row is None or tuple(row) == (plan.destination, plan.destination_type, plan.target):
        return None
    return f"{row[0]}:{row[2]}"


def _build(
    db: Database,
    plan: Plan,
    sync: SyncSettings,
    identity: str,
    consent_column: str,
    payload_sql: str,
    field_params: dict[str, str],
) -> None:
    t = plan.table
    opted_out = ", ".join(f"'{s}'" for s in OPTED_OUT)
    # Each member is checked on its own first (key, opt-out, policy); then per key: an opt-out
    # by any person holding the key vetoes it (an opt-out must win over a duplicate's opt-in),
    # and among the rest the lowest person_id is sent.
    db.execute(
        f"""
        CREATE TEMP TABLE {t}_people AS
        WITH base AS (
            SELECT m.person_id AS person_id,
                   {_KEY_SQL[identity]} AS key,
                   f.{consent_column} AS consent,
                   {payload_sql} AS payload,
                   COALESCE(f.{consent_column} IN ({opted_out}), 0) AS opted_out
            FROM segment_members m
            LEFT JOIN person_features f ON f.person_id = m.person_id
            WHERE m.segment = :segment
        ), checked AS (
            SELECT *, CASE
                WHEN key IS NULL THEN 'no valid ' || :identity
                WHEN opted_out THEN 'opted out (' || consent || ')'
                WHEN NOT COALESCE({_GATES[sync.consent]}, 0)
                    THEN 'consent ' || COALESCE(consent, 'unknown')
                         || ' not allowed by policy ' || :policy
            END AS reason
            FROM base
        ), ranked AS (
            SELECT *,
                   ROW_NUMBER() OVER (PARTITION BY key ORDER BY reason IS NOT NULL, person_id)
                       AS rn,
                   MAX(opted_out) OVER (PARTITION BY key) AS veto
            FROM checked
        )
        SELECT person_id, key, consent, payload, CASE
            WHEN reason IS NOT NULL THEN reason
            WHEN veto THEN 'another person with this ' || :identity || ' opted out'
            WHEN rn > 1 THEN 'duplicate ' || :identity || ' (another member is sent)'
        END AS reason
        FROM ranked
        """,
        {"segment": sync.segment, "identity": identity, "policy": sync.consent, **field_params},
    )
    db.execute(
        f"CREATE TEMP TABLE {t}_desired (key TEXT PRIMARY KEY, person_id INTEGER, "
        "consent TEXT, payload TEXT, payload_hash TEXT)"
    )
    # The hash covers consent as well as the payload: a refusal that depended on consent (a
    # contact skipped for lacking it) must be retried once the person subscribes.
    db.execute(
        f"INSERT INTO {t}_desired SELECT key, person_id, consent, payload, "
        f"segsync_sha256(coalesce(consent, '') || char(31) || payload) "
        f"FROM {t}_people WHERE reason IS NULL"
    )

    plan.previous_target = _previous_target(db, plan)
    # A baseline acknowledged by another target is released, not diffed against.
    keep = int(plan.previous_target is None)
    if not keep:
        plan.released = db.execute(
            "SELECT count(*) FROM sync_state WHERE sync = ?", [plan.sync]
        ).fetchone()[0]
    db.execute(
        f"CREATE TEMP TABLE {t} (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, op TEXT, "
        "class TEXT NOT NULL, person_id INTEGER, consent TEXT, payload TEXT, "
        "payload_hash TEXT, reason TEXT)"
    )
    # One row per key found in the desired set, the baseline or the outcomes. ``doubt`` marks
    # an unconfirmed last attempt; ``payload_hash`` is the one the op is about (the desired
    # payload for add/update, the acknowledged one for remove) so a rejected remove stays
    # suppressed while nothing changes. ``why`` explains a removal for the sync log: the key's
    # holder is now invalid, or the acknowledged person is invalid or has another key.
    db.execute(
        f"""
        INSERT INTO {t} (key, op, class, person_id, consent, payload, payload_hash, reason)
        WITH b AS (SELECT * FROM sync_state WHERE sync = :sync AND :keep),
        o AS (SELECT * FROM sync_outcomes WHERE sync = :sync AND :keep),
        keys AS (SELECT key FROM {t}_desired UNION SELECT key FROM b UNION SELECT key FROM o),
        why AS (
            SELECT key, min(reason) AS reason FROM {t}_people
            WHERE key IS NOT NULL AND reason IS NOT NULL GROUP BY key
        ),
        j AS (
            SELECT keys.key AS key,
                   d.key IS NOT NULL AS wanted, b.key IS NOT NULL AS known,
                   b.config_hash AS b_cfg, b.payload_hash AS b_hash, b.person_id AS b_person,
                   d.person_id AS d_person, d.consent AS consent, d.payload AS payload,
                   d.payload_hash AS d_hash,
                   o.status AS o_status, o.op AS o_op, o.payload_hash AS o_hash,
                   o.config_hash AS o_cfg,
                   COALESCE(o.status IN ('pending', 'failed'), 0) AS doubt,
                   COALESCE(why.reason, was.reason, CASE WHEN was.person_id IS NOT NULL
                       THEN 'the person''s ' || :identity || ' changed' END) AS why
            FROM keys
            LEFT JOIN {t}_desired d ON d.key = keys.key
            LEFT JOIN b ON b.key = keys.key
            LEFT JOIN o ON o.key = keys.key
            LEFT JOIN why ON why.key = keys.key
            LEFT JOIN {t}_people was ON was.person_id = b.person_id
        ),
        c AS (
            SELECT *, CASE
                WHEN wanted AND NOT known THEN 'add'
                WHEN wanted AND b_cfg <> :cfg THEN 'add'
                WHEN wanted AND b_hash IS NOT d_hash THEN 'update'
                WHEN wanted AND doubt THEN CASE o_op WHEN 'update' THEN 'update' ELSE 'add' END
                WHEN wanted THEN NULL
                WHEN :can_remove AND (known OR doubt) THEN 'remove'
            END AS op
            FROM j
        )
        SELECT key, op,
            CASE
                WHEN op IS NULL THEN CASE WHEN wanted THEN 'unchanged' ELSE 'stale' END
                WHEN o_status = 'rejected' AND o_op = op AND o_cfg = :cfg
                     AND o_hash IS (CASE op WHEN 'remove' THEN b_hash ELSE d_hash END)
                    THEN 'suppressed'
                ELSE 'send'
            END,
            CASE WHEN wanted THEN d_person ELSE b_person END,
            consent,
            CASE WHEN op = 'remove' THEN NULL ELSE payload END,
            CASE WHEN op = 'remove' THEN b_hash ELSE d_hash END,
            CASE
                WHEN op IS NULL THEN NULL
                WHEN known AND b_cfg <> :cfg AND op = 'add' THEN :rediff
                WHEN doubt THEN 'retry: last attempt ' || o_status
                WHEN op = 'remove' THEN COALESCE(why, 'left the segment')
            END
        FROM c
        ORDER BY CASE op WHEN 'add' THEN 0 WHEN 'update' THEN 1 WHEN 'remove' THEN 2 ELSE 3 END,
                 key
        """,
        {
            "sync": plan.sync,
            "keep": keep,
            "cfg": plan.config_hash,
            "can_remove": int(plan.capabilities.can_remove),
            "rediff": _REDIFF_REASON,
            "identity": plan.capabilities.identity,
        },
    )
    if keep:
        plan.baseline = db.execute(
            "SELECT count(*) FROM sync_state WHERE sync = ?", [plan.sync]
        ).fetchone()[0]


def _guard(
    db: Database,
    plan: Plan,
    removals_blocked: bool,
    allow_large_removals: bool,
    max_removal_share: float,
) -> None:
    """Hold every removal when the run's data is suspect or the removals are too many."""
    removes = db.execute(
        f"SELECT count(*) FROM {plan.table} WHERE class = 'send' AND op = 'remove'"
    ).fetchone()[0]
    if not removes:
        return
    if removals_blocked:
        reason = "a source pull failed or came back empty; removals wait for a clean pull"
    elif not allow_large_removals and removes > max_removal_share * plan.baseline:
        reason = (
            f"{removes} removals exceed {max_removal_share:.0%} of the {plan.baseline} "
            "acknowledged members; rerun with --allow-large-removals to apply them"
        )
    else:
        return
    plan.held_reason = reason
    db.execute(
        f"UPDATE {plan.table} SET class = 'held', reason = ? "
        "WHERE class = 'send' AND op = 'remove'",
        [reason],
    )


def _count(db: Database, plan: Plan) -> None:
    t = plan.table
    plan.desired = db.execute(f"SELECT count(*) FROM {t}_desired").fetchone()[0]
    counts: dict[tuple[str, str | None], int] = {
        (cls, op): n
        for cls, op, n in db.execute(
            f"SELECT class, op, count(*) FROM {t} GROUP BY class, op"
        ).fetchall()
    }
    plan.adds = counts.get(("send", "add"), 0)
    plan.updates = counts.get(("send", "update"), 0)
    plan.removes = counts.get(("send", "remove"), 0)
    plan.held = sum(n for (cls, _op), n in counts.items() if cls == "held")
    plan.suppressed = sum(n for (cls, _op), n in counts.items() if cls == "suppressed")
    plan.unchanged = sum(n for (cls, _op), n in counts.items() if cls == "unchanged")
    plan.rediff = db.execute(
        f"SELECT count(*) FROM {t} WHERE class = 'send' AND reason = ?", [_REDIFF_REASON]
    ).fetchone()[0]
    plan.invalid_reasons = {
        reason: n
        for reason, n in db.execute(
            f"SELECT reason, count(*) FROM {t}_people WHERE reason IS NOT NULL "
            "GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall()
    }
    plan.invalid = sum(plan.invalid_reasons.values())


__all__ = [
    "ANY_FIELD",
    "CONSENT_COLUMN",
    "OPTED_OUT",
    "Plan",
    "PlannedChange",
    "canonical_hash",
    "config_hash",
    "plan_sync",
    "target_name",
]
