"""Erasure that sticks: keyed digests of erased identifiers, checked at ingest.

``segsync forget`` erases a person from the store, but the record usually still exists at the
source (the shop, last month's POS export), and the next pull would bring them back. So erasure
also adds each of the person's identifiers to a suppression list — their normalised emails and
phones, their link ids and their source records' keys — and the writer drops (and counts) every
incoming record that matches one, before anything of it is stored.

The list holds no identifier, only its HMAC-SHA-256 under a random salt kept in this store's
``meta`` table: a leaked list cannot be reversed by hashing a list of known emails, yet the same
store recognises an address it erased. Digests are kind-free (an email holds ``@``, a phone is
E.164 ``+…``, a record key is namespaced by its source), so one set answers every lookup.

Tables: ``suppressions`` (digest, kind, created_at) and ``meta`` (the salt).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlite_utils import Database

from ..store import utcnow
from .identifiers import normalise_email, normalise_phone

_SALT_KEY = "suppression_salt"
#: What an entry stands for, for ``segsync forget --list``.
KINDS = ("email", "phone", "link_id", "record")


def _salt(db: Database) -> bytes:
    """This store's salt, made on first use: a store that never erased anyone has none."""
    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
               [_SALT_KEY, secrets.token_hex(32)])
    return bytes.fromhex(db.execute("SELECT value FROM meta WHERE key = ?",
                                    [_SALT_KEY]).fetchone()[0])


def record_value(source: str, key: str) -> str:
    """The suppressed form of a source record's key (keys are unique only within a source)."""
    return f"record\x1f{source}\x1f{key}"


def _digest(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()


def keyed_digest(db: Database, value: str) -> str:
    """``value``'s HMAC under this store's salt: the stand-in for an erased identifier wherever
    a row must stay countable (the sync log), and not reversible by hashing known emails."""
    return _digest(_salt(db), value)


def suppress(db: Database, entries: Iterable[tuple[str, str]]) -> int:
    """Add ``(kind, value)`` entries (values already normalised) to the list; returns how many
    were new. Call it inside the erasure's transaction, so both land or neither."""
    salt = _salt(db)
    before = db.conn.total_changes
    db.conn.executemany(
        "INSERT OR IGNORE INTO suppressions(digest, kind, created_at) VALUES (?, ?, ?)",
        [(_digest(salt, value), kind, utcnow()) for kind, value in entries],
    )
    return db.conn.total_changes - before


def suppression_counts(db: Database) -> dict[str, int]:
    """How many entries the list holds, by kind (every kind present, zero or not)."""
    counts = dict.fromkeys(KINDS, 0)
    counts.update(db.execute("SELECT kind, count(*) FROM suppressions GROUP BY kind").fetchall())
    return counts


class Suppressions:
    """The list loaded for one pull: set lookups, no query per record.

    Falsy when the list is empty, so a store that never erased anyone pays nothing per record.
    """

    def __init__(self, db: Database, default_region: str):
        self.region = default_region
        self._digests = frozenset(r[0] for r in db.execute("SELECT digest FROM suppressions"))
        self._salt = _salt(db) if self._digests else b""

    def __bool__(self) -> bool:
        return bool(self._digests)

    def holds(self, *values: str | None) -> bool:
        """Whether any of these normalised values (email, E.164 phone, link id, record value)
        is suppressed."""
        return any(v is not None and _digest(self._salt, v) in self._digests for v in values)

    def mentions(self, raw: Mapping[str, Any] | Any) -> bool:
        """Whether a raw row (a rejected one, whose fields were never normalised) carries a
        suppressed email or phone in any of its text fields."""
        if not isinstance(raw, Mapping):
            return False
        for value in raw.values():
            if not isinstance(value, str) or not value.strip():
                continue
            if "@" in value:
                if self.holds(normalise_email(value)[0] or value.strip().lower()):
                    return True
            elif sum(ch.isdigit() for ch in value) >= 7 and self.holds(
                    normalise_phone(value, self.region)[0]):
                return True
        return False
