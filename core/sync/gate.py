"""The desired set of one sync: who may be at the target, and why the others may not.

In: ``segment_members`` of the sync's segment joined to ``person_features``. Out: two temporary
tables of the plan, ``<plan>_people`` (every member with its key, consent, payload and, when it
cannot be sent, the reason) and ``<plan>_desired`` (one row per sendable key with the hash of
what is sent). The consent gate (DESIGN §4 rule 3) lives here: opt-outs are never sent whatever
the sync's policy, and among several people sharing a key an opt-out by any one of them wins.
"""

from __future__ import annotations

import hashlib
import itertools
import re

from sqlite_utils import Database

from ..connector import ANY_FIELD, Capabilities
from ..errors import ConfigError
from ..measure import CUSTOM_PREFIX
from ..settings import SyncSettings

#: Consent states that mean "never send", whatever the sync's policy.
OPTED_OUT = ("UNSUBSCRIBED", "INVALID", "REDACTED")
#: Why a segment member is held out, in the marketer's words: the stable machine keys of the
#: consent summary (``segsync plan --json``: ``consent``), in the order they are checked.
HELD_OUT = ("no_address", "unsubscribed", "not_opted_in", "duplicate")
#: The consent summary's keys, members sent first, as ``run``, ``plan`` and the report head them.
CONSENT_LABELS = {
    "eligible": "eligible",
    "not_opted_in": "not opted in",
    "unsubscribed": "unsubscribed/suppressed",
    "no_address": "no valid email/phone",
    "duplicate": "duplicate address",
}
#: The ``person_features`` consent column for each identity kind (email or SMS channel).
CONSENT_COLUMN = {"email": "email_subscription_status", "phone": "sms_subscription_status"}
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
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_]+")


def _sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def feature_columns(db: Database) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(person_features)").fetchall()}


def payload_sql(
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



def build_desired(
    db: Database,
    table: str,
    sync: SyncSettings,
    identity: str,
    payload_sql: str,
    field_params: dict[str, str],
) -> None:
    """Create ``<table>_people`` and ``<table>_desired`` for ``sync`` (see the module doc)."""
    t = table
    consent_column = CONSENT_COLUMN[identity]
    db.conn.create_function("segsync_sha256", 1, _sha256, deterministic=True)
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
        END AS reason, CASE
            WHEN key IS NULL THEN 'no_address'
            WHEN opted_out OR veto THEN 'unsubscribed'
            WHEN reason IS NOT NULL THEN 'not_opted_in'
            WHEN rn > 1 THEN 'duplicate'
        END AS held_out
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


_checks = itertools.count(1)


def gate_reasons(db: Database, sync: SyncSettings, identity: str,
                 person_ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """Why each of ``person_ids`` (members of the sync's segment) would be held out of
    ``sync``: its :data:`HELD_OUT` category and the gate's detailed reason, both None when they
    would be sent. The very gate a plan applies, for a few people (``segsync segments why``).
    People not in the segment are absent from the answer."""
    table = f"segsync_gate_{next(_checks)}"
    build_desired(db, table, sync, identity, "json_object()", {})
    try:
        marks = ", ".join("?" * len(person_ids))
        return {person_id: (held_out, reason) for person_id, held_out, reason in db.execute(
            f"SELECT person_id, held_out, reason FROM {table}_people "
            f"WHERE person_id IN ({marks})", person_ids)}
    finally:
        db.execute(f"DROP TABLE temp.{table}_people")
        db.execute(f"DROP TABLE temp.{table}_desired")
