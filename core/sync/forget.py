"""Erasure: ``segsync forget EMAIL|PHONE`` removes a person's data from the store.

Everything segsync holds about the person goes in one transaction: their source records, orders
and raw rows, rejected rows that mention the identifier, their profile, features, predictions
and segment memberships, and the identifier in the sync log (replaced by a digest, so the log's
counts stay true). What the destinations were sent is kept as a bare key in each sync's
baseline, without its payload: the next ``segsync run`` then removes the person from every
target, because they are no longer in any segment, and :func:`scrub_log` replaces the key in
the log rows that removal writes.

Erasing them at the source (Shopify, the POS) is the operator's part, and until it is done the
source still hands the person over on every pull. So the erasure also puts keyed digests of the
person's emails, phones, link ids and record keys on the suppression list
(:mod:`segsync.core.ingest.suppress`): later pulls drop their records unstored. The store is then
rewritten (``VACUUM``) and its write-ahead log truncated, so the identifiers do not linger in
freed pages or page slack of the database files either, whatever SQLite's ``secure_delete``
default and whatever earlier writes left there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlite_utils import Database

from ..errors import ConfigError
from ..ingest import (
    Suppressions,
    keyed_digest,
    normalise_email,
    normalise_phone,
    record_value,
    suppress,
)


@dataclass
class Forgotten:
    """What an erasure removed, by table."""

    identifier: str
    people: int = 0
    customers: int = 0
    orders: int = 0
    rejects: int = 0
    log_rows: int = 0
    pending_removals: int = 0
    #: Entries added to the suppression list (emails, phones, link ids, record keys).
    suppressed: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def digest(db: Database, value: str) -> str:
    """The stand-in for an erased identifier in the sync log: keyed by the store's salt, so the
    log's counts stay true without a digest anyone could match against a list of emails."""
    return "forgotten:" + keyed_digest(db, value)[:16]


def scrub_log(db: Database, run_id: int, default_region: str) -> int:
    """Replace, in ``run_id``'s log rows, every key on the suppression list by its stand-in.

    The run after an erasure removes the person from each target and logs that removal under
    the key it sent; without this the raw address would sit in the log until someone ran
    ``forget`` again. That run also deleted the key from each sync's baseline, and the log row
    held it before it was replaced: when anything was scrubbed the store is rewritten, as by
    :func:`forget`, so neither copy survives in page slack. Returns how many rows were scrubbed.
    """
    suppressions = Suppressions(db, default_region)
    if not suppressions:
        return 0
    keys = [r[0] for r in db.execute(
        "SELECT DISTINCT key FROM sync_log WHERE run_id = ? AND key NOT LIKE 'forgotten:%'",
        [run_id])]
    scrubbed = 0
    with db.atomic():
        for key in filter(suppressions.holds, keys):
            scrubbed += db.execute("UPDATE sync_log SET key = ? WHERE run_id = ? AND key = ?",
                                   [digest(db, key), run_id, key]).rowcount
    if scrubbed:
        _rewrite(db)
    return scrubbed


def forget(db: Database, identifier: str, default_region: str) -> Forgotten:
    """Erase the person holding ``identifier`` (an email or a phone number)."""
    value = normalise_email(identifier)[0] or normalise_phone(identifier, default_region)[0]
    if value is None:
        raise ConfigError(f"{identifier!r} is neither a valid email address nor a phone number")
    result = Forgotten(value)
    with db.atomic():
        _erase(db, value, result)
    # Only after a delete: when nothing of the person was stored, no page can hold them.
    if any(count for name, count in result.as_dict().items()
           if name not in ("identifier", "suppressed")):
        _rewrite(db)
    return result


def _rewrite(db: Database) -> None:
    """Rewrite the store so that no deleted content survives in its files.

    A delete leaves the row's bytes in a freed page or in the slack of its page unless
    ``secure_delete`` was on, and it is off by default in most SQLite builds (Debian's zeroes):
    earlier feature builds (which drop the old ``person_features`` without zeroing, see
    :func:`segsync.core.measure.features.swap`), updates and deletes, and the erasure's own
    deletes, may have left copies of the person anywhere. ``VACUUM`` builds the store again from
    its live rows; the write-ahead log, which then holds the new file, is checkpointed and
    truncated. It takes about as long as copying the store (30 s for 1M people, 4.4 GB), which
    an erasure, a rare manual command, can afford; it cannot run in a transaction.
    """
    db.execute("VACUUM")
    if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _erase(db: Database, value: str, result: Forgotten) -> None:
    """Delete everything of the person holding ``value`` (one transaction, the caller's)."""
    db.execute("DROP TABLE IF EXISTS temp.forget_people")
    db.execute(
        "CREATE TEMP TABLE forget_people AS "
        "SELECT person_id FROM identity_links WHERE value = ? "
        "UNION SELECT person_id FROM customers WHERE (email = ? OR phone = ?) "
        "AND person_id IS NOT NULL",
        [value, value, value],
    )
    people = "SELECT person_id FROM temp.forget_people"
    # The person's identifiers, before their records go: each is scrubbed from the log.
    keys = [row[0] for row in db.execute(
        f"SELECT value FROM identity_links WHERE person_id IN ({people}) "
        f"UNION SELECT email FROM customers WHERE person_id IN ({people}) AND email NOTNULL "
        f"UNION SELECT phone FROM customers WHERE person_id IN ({people}) AND phone NOTNULL"
    )] or [value]
    raw_values = [row[0] for row in db.execute(
        f"SELECT email_raw FROM customers WHERE person_id IN ({people}) AND email_raw NOTNULL "
        f"UNION SELECT phone_raw FROM customers WHERE person_id IN ({people}) "
        f"AND phone_raw NOTNULL"
    )]
    result.people = db.execute(f"SELECT count(*) FROM ({people})").fetchone()[0]
    result.suppressed = suppress(db, [
        ("email" if "@" in value else "phone", value),
        *db.execute(f"SELECT kind, value FROM identity_links WHERE person_id IN ({people})"),
        *((row[0], record_value(row[1], row[2])) for row in db.execute(
            f"SELECT 'record', source, key FROM customers WHERE person_id IN ({people})")),
    ])
    db.execute(
        f"DELETE FROM order_lines WHERE (source, order_key) IN "
        f"(SELECT source, key FROM orders WHERE person_id IN ({people}))"
    )
    db.execute(
        f"DELETE FROM raw_records WHERE (source, stream, key) IN "
        f"(SELECT source, 'orders', key FROM orders WHERE person_id IN ({people}) "
        f"UNION SELECT source, 'customers', key FROM customers "
        f"WHERE person_id IN ({people}))"
    )
    result.orders = db.execute(
        f"DELETE FROM orders WHERE person_id IN ({people})").rowcount
    result.customers = db.execute(
        f"DELETE FROM customers WHERE person_id IN ({people})").rowcount
    # The change log (m005) keeps a removed record's identifiers for the next resolution; an
    # erased person's go (their links and rows are deleted here), their id stays dirty.
    db.execute(f"DELETE FROM pending_changes WHERE person_id IN ({people})")
    db.execute(f"INSERT OR IGNORE INTO dirty_people {people}")
    for table, column in (("people", "id"), ("identity_links", "person_id"),
                          ("segment_members", "person_id")):
        db.execute(f"DELETE FROM {table} WHERE {column} IN ({people})")
    # Everything measured about them: features, predictions, their inputs, expiry dates.
    for table in ("person_features", "person_predictions", "prediction_inputs",
                  "person_expiry", "changed_features"):
        if db[table].exists():
            db.execute(f"DELETE FROM {table} WHERE person_id IN ({people})")
    for text in {*keys, *(v.strip() for v in raw_values if v.strip())}:
        # Rejected rows keep the raw row text; any row mentioning an identifier goes.
        result.rejects += db.execute(
            "DELETE FROM rejects WHERE instr(lower(raw), lower(?)) > 0", [text]).rowcount
    for key in keys:
        result.log_rows += db.execute(
            "UPDATE sync_log SET key = ? WHERE key = ?", [digest(db, key), key]).rowcount
        result.pending_removals += db.execute(
            "UPDATE sync_state SET payload = NULL, person_id = NULL WHERE key = ?", [key]
        ).rowcount
    db.execute("DROP TABLE temp.forget_people")
