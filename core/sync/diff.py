"""The diff of one sync: its desired set against the acknowledged baseline, and guardrails.

In: the plan's ``<plan>_desired`` and ``<plan>_people`` tables (:mod:`.gate`), the sync's
``sync_state`` (the baseline the destination confirmed) and ``sync_outcomes`` (the last attempt
per key). Out: the plan table ``<plan>``, one row per key with its op (add, update, remove),
its class (send, held, suppressed, unchanged, stale) and, for the sync log, why.

Keys whose last attempt is unconfirmed (``pending`` after a crash, ``failed`` after a transient
error) are *in doubt*: the destination may or may not have applied the write, so the diff
re-sends the desired state for them and removes in-doubt keys that are no longer desired. Keys
the destination *rejected* are not re-sent until their op, payload or config changes.
"""

from __future__ import annotations

from sqlite_utils import Database

#: The reason of an add re-sent because its baseline row was confirmed under another config.
REDIFF_REASON = "sync settings changed: full re-send"


def previous_target(db: Database, sync: str, here: tuple[str, str, str]) -> str | None:
    """``destination:target`` when the sync's baseline belongs to another target than
    ``here`` (destination, destination type, target)."""
    row = db.execute(
        "SELECT destination, destination_type, target FROM sync_targets WHERE sync = ?",
        [sync],
    ).fetchone()
    if row is None or tuple(row) == here:
        return None
    return f"{row[0]}:{row[2]}"


def diff_against_baseline(
    db: Database,
    table: str,
    *,
    sync: str,
    config_hash: str,
    identity: str,
    can_remove: bool,
    keep_baseline: bool,
) -> None:
    """Create the plan table ``table``; with ``keep_baseline`` false (the baseline belongs to
    another target and is released) every desired key is an add and nothing is removed."""
    t = table
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
            "sync": sync,
            "keep": int(keep_baseline),
            "cfg": config_hash,
            "can_remove": int(can_remove),
            "rediff": REDIFF_REASON,
            "identity": identity,
        },
    )
    # The executor pages through one class in seq order; without this index each page, and
    # the last empty one above all, scans the unchanged majority of the table.
    db.execute(f"CREATE INDEX temp.{t}_class ON {t} (class, seq)")


def hold_removals(
    db: Database,
    table: str,
    baseline: int,
    removals_blocked: bool,
    allow_large_removals: bool,
    max_removal_share: float,
) -> str | None:
    """Hold every removal when the run's data is suspect or the removals are too many
    (DESIGN §4 rule 4); returns why, or None when nothing is held."""
    removes = db.execute(
        f"SELECT count(*) FROM {table} WHERE class = 'send' AND op = 'remove'"
    ).fetchone()[0]
    if not removes:
        return None
    if removals_blocked:
        reason = "a source pull failed or came back empty; removals wait for a clean pull"
    elif not allow_large_removals and removes > max_removal_share * baseline:
        reason = (
            f"{removes} removals exceed {max_removal_share:.0%} of the {baseline} "
            "acknowledged members; rerun with --allow-large-removals to apply them"
        )
    else:
        return None
    db.execute(
        f"UPDATE {table} SET class = 'held', reason = ? "
        "WHERE class = 'send' AND op = 'remove'",
        [reason],
    )
    return reason
