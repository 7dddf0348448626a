"""Planning one sync: who should be at the target, and what must change to get them there.

A plan compares two sets by key (the destination's identity: a normalised email or an E.164
phone):

* the **desired set** (:mod:`.gate`): members of the sync's segment with a valid key who pass
  the consent gate, one row per key, with the payload of synced fields and its hash;
* the **acknowledged baseline** (``sync_state``): what the destination confirmed, under which
  config hash (:mod:`.target`) and with which payload hash.

:mod:`.diff` compares them, re-sending keys in doubt and holding removals a guardrail stops.
Everything is set-based SQL over temporary tables, so planning a million people costs a few
scans, not a million Python iterations, and ``segsync plan`` writes nothing to the store
(temporary tables live outside the database file).

When a sync's target (destination, destination type or target name) changes, the baseline
belongs to a target segsync no longer manages. Its members are **released**: left where they
are and reported, never removed, because the old list may be in use by someone else now and a
rename must not empty a list behind the marketer's back. The new target gets a full upload.

In: ``segment_members``, ``person_features``, ``sync_state``, ``sync_outcomes``,
``sync_targets``. Out: a :class:`Plan` over temporary tables; nothing in the store changes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from sqlite_utils import Database

from ..connector import Capabilities, Change, Destination
from ..errors import SegsyncError
from ..settings import SyncSettings
from .diff import REDIFF_REASON, diff_against_baseline, hold_removals, previous_target
from .gate import CONSENT_COLUMN, HELD_OUT, build_desired, feature_columns, payload_sql
from .target import config_hash, target_name

_plan_ids = itertools.count(1)

ChangeClass = Literal["send", "held", "suppressed", "unchanged", "stale"]


@dataclass
class PlannedChange:
    """A change, its place in send order, and why it was planned (for ``segsync plan``)."""

    seq: int
    change: Change
    reason: str | None


@dataclass(frozen=True, slots=True)
class SendBatch:
    """One page of planned changes, summed up and serialised by SQL in one statement.

    ``first``/``last`` bound its seqs and ``low``/``high`` its keys, ``ops`` names its
    distinct ops (``add+update``), ``journal`` is its ``[[op, key], …]`` JSON for the journal
    and ``columns`` holds the page as JSON columns (keys, ops, person ids, consents, payloads,
    then seqs and reasons when asked for). Only :meth:`changes` decodes it, in one
    ``json.loads``: the executor calls it in the worker that sends the batch, so the calling
    thread, which every batch queues behind for its database writes, handles no per-change
    Python object at all (DESIGN §5).
    """

    first: int
    last: int
    size: int
    low: str
    high: str
    ops: str
    journal: str
    columns: str

    def __len__(self) -> int:
        return self.size

    def changes(self) -> list[Change]:
        keys, ops, person_ids, consents, fields, *_detail = json.loads(self.columns)
        return list(map(Change, keys, ops, person_ids, fields, consents))

    def details(self) -> list[tuple[int, Change, str | None]]:
        """``(seq, change, reason)`` per change, for a page read with ``detail``."""
        *_columns, seqs, reasons = json.loads(self.columns)
        return list(zip(seqs, self.changes(), reasons, strict=True))


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
    #: Members by consent outcome: ``eligible`` (sent) and each of :data:`.gate.HELD_OUT`.
    consent: dict[str, int] = field(default_factory=dict)
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
            "consent": dict(self.consent),
            "released": self.released,
            "previous_target": self.previous_target,
            "rediff": self.rediff,
        }

    def batches(
        self, size: int, classes: tuple[ChangeClass, ...] = ("send",)
    ) -> Iterator[list[PlannedChange]]:
        """Planned changes of ``classes`` in send order (adds, updates, removes; by key), in
        lists of at most ``size``, each with its seq and why it was planned."""
        for page in self._pages(size, classes, detail=True):
            yield sorted(
                (PlannedChange(*row) for row in page.details()), key=attrgetter("seq")
            )

    def send_batches(self, size: int) -> Iterator[SendBatch]:
        """The changes to send, in send order, in batches of at most ``size``."""
        return self._pages(size, ("send",))

    def _pages(
        self, size: int, classes: tuple[ChangeClass, ...], *, detail: bool = False
    ) -> Iterator[SendBatch]:
        # Pages by ``seq`` rather than holding a cursor open, because the executor writes to
        # the same connection between pages. Every aggregate of the statement sees the rows
        # in the same order, so the columns stay aligned whatever that order is.
        conn = self._db().conn
        marks = ",".join("?" for _ in classes)
        extra = " || ',' || json_group_array(seq) || ',' || json_group_array(reason)"
        sql = (
            "SELECT min(seq), max(seq), count(*), group_concat(DISTINCT op), "
            "json_group_array(json_array(op, key)), "
            "'[' || json_group_array(key) || ',' || json_group_array(op) || ',' || "
            "json_group_array(person_id) || ',' || json_group_array(consent) || ',[' || "
            # Payloads are spliced in as stored, unparsed; removals carry none.
            "group_concat(COALESCE(NULLIF(payload, ''), '{}'), ',') || ']'"
            f"{extra if detail else ''} || ']' FROM (SELECT * FROM {self.table} "
            f"WHERE class IN ({marks}) AND seq > ? ORDER BY seq LIMIT ?)"
        )
        after = 0
        while True:
            first, last, count, ops, journal, columns = conn.execute(
                sql, [*classes, after, size]
            ).fetchone()
            if not count:
                return
            distinct = sorted((ops or "").split(","))
            # Rows are ordered by op, then key: with one op, the first and last rows bound the
            # keys, two lookups where min() and max() would compare every key.
            bounds = (
                f"SELECT (SELECT key FROM {self.table} WHERE seq = ?), "
                f"(SELECT key FROM {self.table} WHERE seq = ?)"
                if len(distinct) == 1
                else f"SELECT min(key), max(key) FROM {self.table} "
                f"WHERE class IN ({marks}) AND seq BETWEEN ? AND ?"
            )
            params = [first, last] if len(distinct) == 1 else [*classes, first, last]
            low, high = conn.execute(bounds, params).fetchone()
            ops = "+".join(distinct)
            yield SendBatch(first, last, count, low, high, ops, journal, columns)
            if count < size:
                # A short page is the last: asking again would only scan the rest for nothing.
                return
            after = last

    def changes(self, classes: tuple[ChangeClass, ...] = ("send",)) -> Iterator[Change]:
        """The planned changes of ``classes``, one by one (``held`` shows the held removals)."""
        for page in self._pages(1000, classes):
            yield from page.changes()

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
        for suffix in ("", "_desired", "_people"):
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
    columns = feature_columns(db)
    for needed in (identity, CONSENT_COLUMN[identity]):
        if needed not in columns:
            raise SegsyncError(
                f"person_features has no column {needed!r}; run the features stage first"
            )
    payload, field_params = payload_sql(name, sync, caps, columns)
    plan = Plan(
        sync=name,
        settings=sync,
        destination=sync.destination,
        destination_type=destination.type_name,
        target=target_name(sync),
        config_hash=config_hash(sync, destination),
        capabilities=caps,
        db=db,
        table=f"segsync_plan_{next(_plan_ids)}",
    )
    try:
        build_desired(db, plan.table, sync, identity, payload, field_params)
        plan.previous_target = previous_target(
            db, name, (plan.destination, plan.destination_type, plan.target))
        # A baseline acknowledged by another target is released, not diffed against.
        acknowledged = db.execute(
            "SELECT count(*) FROM sync_state WHERE sync = ?", [name]).fetchone()[0]
        if plan.previous_target is None:
            plan.baseline = acknowledged
        else:
            plan.released = acknowledged
        diff_against_baseline(
            db, plan.table, sync=name, config_hash=plan.config_hash, identity=identity,
            can_remove=caps.can_remove, keep_baseline=plan.previous_target is None,
        )
        plan.held_reason = hold_removals(db, plan.table, plan.baseline, removals_blocked,
                                         allow_large_removals, max_removal_share)
        _count(db, plan)
    except BaseException:
        plan.close()
        raise
    return plan


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
        f"SELECT count(*) FROM {t} WHERE class = 'send' AND reason = ?", [REDIFF_REASON]
    ).fetchone()[0]
    plan.invalid_reasons = {
        reason: n
        for reason, n in db.execute(
            f"SELECT reason, count(*) FROM {t}_people WHERE reason IS NOT NULL "
            "GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall()
    }
    plan.invalid = sum(plan.invalid_reasons.values())
    held_out = dict(db.execute(
        f"SELECT coalesce(held_out, 'eligible'), count(*) FROM {t}_people GROUP BY 1"
    ).fetchall())
    plan.consent = {k: held_out.get(k, 0) for k in ("eligible", *HELD_OUT)}

