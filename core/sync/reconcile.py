"""Repairing drift: make a sync's baseline say what the destination really holds.

The planner diffs the desired set against the **acknowledged baseline** (``sync_state``), so
a change made at the destination behind segsync's back (a tag removed by hand, a contact added
by hand to a segsync tag) is invisible to it: the baseline still says "in" or never said it.
``segsync run --reconcile`` calls :func:`reconcile` for each sync *before* planning it, which
reads the target's current members and rewrites the baseline to match:

* a key the baseline holds but the destination lacks loses its baseline row, so the plan sees
  a desired key that is not acknowledged and **adds it back** (or, no longer desired, forgets
  it: it is gone already);
* a key the destination holds but the baseline lacks gets a baseline row under the current
  config hash with no payload hash, so the plan **removes it** when it is not desired, and
  sends an update (its fields, which segsync never wrote) when it is; its membership is left
  alone because it already has it.

The rest is the normal plan and push, so every guardrail still applies: a reconcile that finds
many unexpected members produces removals that the removal-share guardrail holds until an
operator allows them. A target segsync never pushed to (no ``sync_targets`` row) or a changed
target is not reconciled: its members were never segsync's to remove.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlite_utils import Database

from ..connector import Destination, Target
from ..errors import FatalError, RetriableError
from ..retry import RetryPolicy
from ..settings import SyncSettings
from ..store import utcnow
from .plan import config_hash, target_name

_KEYS = "temp.segsync_reconcile_keys"


@dataclass
class ReconcileResult:
    """What one reconcile found: ``remote`` keys at the destination, ``missing`` acknowledged
    keys the destination lacked (re-sent next), ``unexpected`` keys it held that were never
    acknowledged (removed next unless desired). ``status`` is ``skipped`` (with the reason)
    when the target was not reconcilable and ``failed`` when the destination could not be
    read; the baseline is untouched in both cases."""

    sync: str
    status: Literal["ok", "skipped", "failed"] = "ok"
    remote: int = 0
    missing: int = 0
    unexpected: int = 0
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(key: str, identity: str) -> str:
    # Destinations may echo an address in the case it was typed; segsync keys are lower case.
    key = key.strip()
    return key.lower() if identity == "email" else key


def reconcile(
    db: Database,
    name: str,
    sync: SyncSettings,
    destination: Destination,
    *,
    run_id: int | None = None,
    retry: RetryPolicy | None = None,
) -> ReconcileResult:
    """Rewrite sync ``name``'s baseline to the members its target holds at ``destination``.

    Call it before planning the sync, under the run lock. Reads are retried with ``retry``;
    a destination that stays unreachable gives a ``failed`` result and changes nothing, so
    the run can go on with the baseline it had. With ``run_id``, every baseline row changed is
    logged in ``sync_log`` (op ``reconcile``, outcome ``drift``).
    """
    result = ReconcileResult(sync=name)
    target = target_name(sync)
    row = db.execute(
        "SELECT destination, destination_type, target FROM sync_targets WHERE sync = ?", [name]
    ).fetchone()
    if row is None:
        result.status, result.reason = "skipped", "never pushed: nothing to reconcile"
        return result
    if tuple(row) != (sync.destination, destination.type_name, target):
        result.status = "skipped"
        result.reason = f"the target changed from {row[0]}:{row[2]}; it is released, not repaired"
        return result

    policy = retry or RetryPolicy()
    try:
        remote_target = policy.call(destination.ensure_target, target, dict(sync.options))
        listed = policy.call(lambda: _read(destination, remote_target))
    except (RetriableError, FatalError) as exc:
        result.status, result.reason = "failed", f"reading {target!r}: {exc}"
        return result
    if listed is None:
        result.status, result.reason = "skipped", "the destination cannot list members"
        return result

    identity = destination.capabilities.identity
    keys = {_normalise(k, identity) for k in listed}
    result.remote = len(keys)
    cfg, now = config_hash(sync, destination), utcnow()
    # One transaction: a crash mid-way must not leave a half-rewritten baseline. The remote
    # keys go to a temporary table so the diff is set-based, however large the audience.
    with db.atomic():
        db.execute(f"CREATE TABLE IF NOT EXISTS {_KEYS} (key TEXT PRIMARY KEY)")
        db.execute(f"DELETE FROM {_KEYS}")
        db.conn.executemany(f"INSERT INTO {_KEYS} VALUES (?)", [(k,) for k in keys])
        missing = (f"SELECT key FROM sync_state WHERE sync = ? "
                   f"AND key NOT IN (SELECT key FROM {_KEYS})")
        unexpected = (f"SELECT key FROM {_KEYS} WHERE key NOT IN "
                      "(SELECT key FROM sync_state WHERE sync = ?)")
        if run_id is not None:
            for query, reason in (
                (missing, "acknowledged but missing at the destination: will be sent again"),
                (unexpected, "at the destination but never acknowledged: removed unless wanted"),
            ):
                db.execute(
                    "INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
                    f"SELECT ?, ?, key, 'reconcile', 'drift', ?, ? FROM ({query})",
                    [run_id, name, reason, now, name],
                )
        # Found but never acknowledged: a baseline row without a payload hash, so a wanted key
        # gets its fields sent and an unwanted one is removed.
        result.unexpected = db.execute(
            "INSERT INTO sync_state (sync, key, config_hash, person_id, payload_hash, payload, "
            f"acked_run, acked_at) SELECT ?, key, ?, NULL, NULL, NULL, ?, ? FROM ({unexpected})",
            [name, cfg, run_id, now, name],
        ).rowcount
        result.missing = db.execute(
            f"DELETE FROM sync_state WHERE sync = ? AND key IN ({missing})", [name, name]
        ).rowcount
        db.execute(f"DROP TABLE {_KEYS}")
    return result


def _read(destination: Destination, target: Target) -> list[str] | None:
    """All members at once, so a transient failure mid-way retries the whole read."""
    members = destination.members(target)
    return None if members is None else list(members)


__all__ = ["ReconcileResult", "reconcile"]
