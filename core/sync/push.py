"""Pushing a plan to its destination and recording what the destination confirmed.

The executor keeps three promises (DESIGN §4):

* **The baseline moves only for confirmed records.** ``sync_state`` is written only for an
  ``ok`` outcome; a rejection, a transient failure, a timeout after the write landed or a crash
  leaves it as it was, and the key is back in the next plan.
* **Every batch is journalled before it is sent.** One transaction writes the ``sync_journal``
  row (state ``sent``) and marks each key ``pending`` in ``sync_outcomes`` (the mark names the
  journal row); only then is the batch handed to a worker. A crash after that point leaves the
  keys in doubt, and the next plan re-sends them (writes are idempotent, so re-sending
  converges) or removes them if they are no longer wanted. Journal rows a crash left in
  ``sent`` are marked ``interrupted`` by the next push.
* **Calls stay within the destination's limits.** Batches hold at most ``max_batch`` changes and
  at most ``max_concurrency`` are in flight. Every database write happens on the calling
  thread, because an SQLite connection is not shared across threads.

The calling thread is the one queue every batch waits in, so it does nothing but SQL: a page
of changes is read and serialised by one statement, journalled by two, and the outcomes of
every batch answered meanwhile are recorded in one transaction, one statement per table. The
workers do the per-change Python: they decode their batch into
:class:`~segsync.core.connector.Change` objects, call the destination and sort its answers.

A batch is retried on :class:`~segsync.core.errors.RetriableError` under a
:class:`~segsync.core.retry.RetryPolicy`. A :class:`~segsync.core.errors.FatalError` whose
``status`` says the request was bad (400, 413, 422) is record-caused: the batch is halved until
every record is classified, so one bad address cannot sink 499 good ones. Any other batch
failure (retries exhausted, bad credentials) stops the sync: its remaining batches are not sent
and are logged as failed, since every further call would fail the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlite_utils import Database

from ..connector import Change, Destination, Outcome, Target
from ..errors import FatalError, RetriableError
from ..ingest.bulk import paused_gc
from ..retry import RetryPolicy
from ..store import utcnow
from .plan import Plan, SendBatch

#: HTTP statuses meaning "this request's content is wrong": worth splitting the batch.
RECORD_CAUSED_STATUS = frozenset({400, 413, 422})

Progress = Callable[[int, int], None]


@dataclass
class SyncResult:
    """What one push did, per key. ``write_calls`` counts every ``apply`` call, retries and
    split halves included, so it can be held against the minimum ``ceil(changes / max_batch)``.

    ``status``: ``held`` when a guardrail held removals (the run must exit 4 until an operator
    decides), else ``failed`` when the destination failed as a whole, else ``partial`` when
    some records were rejected or failed, else ``ok``.
    """

    sync: str
    status: Literal["ok", "partial", "failed", "held"] = "ok"
    added: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    failed: int = 0
    invalid: int = 0
    held: int = 0
    unchanged: int = 0
    suppressed: int = 0
    released: int = 0
    write_calls: int = 0
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """The CLI exit code this result alone calls for (DESIGN §6)."""
        return {"ok": 0, "partial": 1, "failed": 1, "held": 4}[self.status]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_OPS = ("add", "update", "remove")


@dataclass
class _Sent:
    """A worker's answer for one batch: the calls it made, the error that ended it early, how
    many changes of each op were confirmed and, key by key, the ones that were not.

    The worker sorts its outcomes itself, so the calling thread, which every batch queues
    behind, only has the confirmed counts and the (usually empty) exceptions to record.
    """

    calls: int = 0
    error: str | None = None
    confirmed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_OPS, 0))
    #: ``(key, status, reason)``: ``rejected`` for good, or ``failed`` (retried next run).
    unconfirmed: list[tuple[str, str, str | None]] = field(default_factory=list)

    def sort(self, changes: list[Change], outcomes: dict[str, Outcome]) -> None:
        missing = self.error or "the destination returned no outcome"
        confirmed, unconfirmed = self.confirmed, self.unconfirmed
        for change in changes:
            outcome = outcomes.get(change.key)
            if outcome is None:
                unconfirmed.append((change.key, "failed", missing))
            elif outcome.status == "ok":
                confirmed[change.op] += 1
            else:
                status = "rejected" if outcome.status == "rejected" else "failed"
                unconfirmed.append((change.key, status, outcome.reason))


def _pending_reason(journal_id: int) -> str:
    """The reason a ``pending`` outcome carries: the journal row of the batch it was sent in,
    which says which batch a crash interrupted and lets the batch's rows be found again."""
    return f"in flight: journal {journal_id}"


def _record_caused(exc: FatalError) -> bool:
    # Connectors put the HTTP status on the error; without one, a fatal error is assumed to be
    # about the account or the request as a whole, which splitting cannot fix.
    return exc.status in RECORD_CAUSED_STATUS


def _send(
    destination: Destination, target: Target, batch: SendBatch, policy: RetryPolicy
) -> _Sent:
    """Apply one batch with retries and split-on-bad-request; runs in a worker thread, so it
    must not touch the database."""
    changes = batch.changes()
    sent = _Sent()
    outcomes: dict[str, Outcome] = {}

    def attempt(chunk: Sequence[Change]) -> list[Outcome]:
        sent.calls += 1
        return destination.apply(target, chunk)

    def run(chunk: list[Change]) -> None:
        try:
            answers = policy.call(attempt, chunk)
        except FatalError as exc:
            if not _record_caused(exc):
                raise
            if len(chunk) == 1:
                # One record the destination refuses outright: a permanent rejection, which
                # the next plan suppresses until the record changes.
                outcomes[chunk[0].key] = Outcome(chunk[0].key, "rejected", str(exc))
                return
            # k bad records cost O(k log n) extra calls; clean halves go through in one call.
            middle = len(chunk) // 2
            run(chunk[:middle])
            run(chunk[middle:])
            return
        wanted = {c.key for c in chunk}
        for outcome in answers:
            # An outcome for a key not in the call would move a baseline nobody confirmed.
            if outcome.key in wanted:
                outcomes[outcome.key] = outcome

    # Outcomes gathered before a batch-level failure are kept: those records were confirmed.
    try:
        run(changes)
    except RetriableError as exc:
        sent.error = f"transient error, retries exhausted: {exc}"
    except FatalError as exc:
        sent.error = str(exc)
    sent.sort(changes, outcomes)
    return sent


class _Recorder:
    """Every database write of a push, on the calling thread.

    The per-batch statements are set-based over the plan table's seq range and bound by
    parameters, so each is prepared once per push (the connection's statement cache) and
    costs SQLite's per-row work and nothing per change in Python.
    """

    def __init__(self, db: Database, plan: Plan, run_id: int, result: SyncResult):
        self.db = db
        self.conn = db.conn
        self.plan = plan
        self.run_id = run_id
        self.result = result
        t = plan.table
        batch = f"FROM {t} WHERE class = 'send' AND seq BETWEEN ? AND ?"
        # Attempts count consecutive tries of the same change; a new op or payload restarts.
        self.mark_pending = (
            "INSERT INTO sync_outcomes (sync, key, op, status, payload_hash, config_hash, "
            f"attempts, run_id, reason, updated_at) SELECT ?, key, op, 'pending', payload_hash, "
            f"?, 1, ?, ?, ? {batch} "
            "ON CONFLICT (sync, key) DO UPDATE SET status = 'pending', "
            "reason = excluded.reason, "
            "attempts = CASE WHEN sync_outcomes.op = excluded.op "
            "AND sync_outcomes.payload_hash IS excluded.payload_hash "
            "THEN sync_outcomes.attempts + 1 ELSE 1 END, "
            "op = excluded.op, payload_hash = excluded.payload_hash, "
            "config_hash = excluded.config_hash, run_id = excluded.run_id, "
            "updated_at = excluded.updated_at"
        )
        # A batch confirmed in full (the usual case) is written straight from the plan table;
        # otherwise its unconfirmed keys are marked first, and the confirmed ones are those
        # still ``pending``. That order is what keeps a rejected key out of the baseline.
        in_batch = f"{t}.class = 'send' AND {t}.seq BETWEEN ? AND ?"
        still_pending = (
            f"JOIN sync_outcomes o ON o.sync = ? AND o.key = {t}.key AND o.status = 'pending'"
        )
        upsert = (
            "INSERT INTO sync_state (sync, key, config_hash, person_id, payload_hash, payload, "
            f"acked_run, acked_at) SELECT ?, {t}.key, ?, person_id, {t}.payload_hash, payload, "
            f"?, ? FROM {{source}} WHERE {{where}} AND {t}.op <> 'remove' "
            "ON CONFLICT (sync, key) DO UPDATE SET config_hash = excluded.config_hash, "
            "person_id = excluded.person_id, payload_hash = excluded.payload_hash, "
            "payload = excluded.payload, acked_run = excluded.acked_run, "
            "acked_at = excluded.acked_at"
        )
        forget = (
            f"DELETE FROM sync_state WHERE sync = ? AND key IN (SELECT {t}.key FROM {{source}} "
            f"WHERE {{where}} AND {t}.op = 'remove')"
        )
        self.acknowledge = upsert.format(source=t, where=in_batch)
        self.acknowledge_confirmed = upsert.format(source=f"{t} {still_pending}", where=in_batch)
        self.unlist = forget.format(source=t, where=in_batch)
        self.unlist_confirmed = forget.format(source=f"{t} {still_pending}", where=in_batch)
        self.mark_unconfirmed = (
            "UPDATE sync_outcomes SET status = ?, reason = ?, updated_at = ? "
            "WHERE sync = ? AND key = ?"
        )
        # A confirmed change is logged with why it was planned (why a member was removed, that
        # it is a retry); anything else with the destination's reason.
        self.log_ok = (
            "INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
            f"SELECT ?, ?, key, op, 'ok', reason, ? {batch}"
        )
        self.log_each = (
            "INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
            f"SELECT ?, ?, {t}.key, {t}.op, "
            "CASE o.status WHEN 'pending' THEN 'ok' ELSE o.status END, "
            f"CASE o.status WHEN 'pending' THEN {t}.reason ELSE o.reason END, ? "
            f"FROM {t} JOIN sync_outcomes o ON o.sync = ? AND o.key = {t}.key "
            f"WHERE {in_batch} ORDER BY {t}.seq"
        )
        # The batch's pending rows, found by their journal mark within its key range (a range
        # scan, where a list of its keys would cost a lookup per key).
        self.settle = (
            "DELETE FROM sync_outcomes WHERE sync = ? AND key BETWEEN ? AND ? "
            "AND status = 'pending' AND reason = ?"
        )

    def prepare(self) -> None:
        """Close the journal of a crashed push: its batches left in ``sent`` are in doubt,
        their keys already back in this plan through ``pending`` outcomes, so the journal only
        needs to say so."""
        self.db.execute(
            "UPDATE sync_journal SET state = 'interrupted', finished_at = ? "
            "WHERE sync = ? AND state = 'sent'",
            [utcnow(), self.plan.sync],
        )

    def release(self) -> None:
        """Forget a baseline that belongs to a previous target, leaving its members there."""
        plan, now = self.plan, utcnow()
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
                "SELECT ?, sync, key, 'release', 'released', ?, ? FROM sync_state WHERE sync = ?",
                [
                    self.run_id,
                    f"left in previous target {plan.previous_target}, no longer managed",
                    now,
                    plan.sync,
                ],
            )
            self.db.execute("DELETE FROM sync_state WHERE sync = ?", [plan.sync])
            self.db.execute("DELETE FROM sync_outcomes WHERE sync = ?", [plan.sync])
            self.record_target(None)

    def record_target(self, remote_id: str | None) -> None:
        """Record the target the baseline now belongs to."""
        plan = self.plan
        self.db.execute(
            "INSERT INTO sync_targets (sync, destination, destination_type, target, remote_id, "
            "config_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sync) DO UPDATE SET destination = excluded.destination, "
            "destination_type = excluded.destination_type, target = excluded.target, "
            "remote_id = excluded.remote_id, config_hash = excluded.config_hash, "
            "updated_at = excluded.updated_at",
            [
                plan.sync,
                plan.destination,
                plan.destination_type,
                plan.target,
                remote_id,
                plan.config_hash,
                utcnow(),
            ],
        )

    def journal(self, batch: SendBatch) -> int:
        """Write the journal row of ``batch`` and mark its keys pending, in one transaction
        committed before the batch is sent."""
        plan, conn, now = self.plan, self.conn, utcnow()
        span = (batch.first, batch.last)
        with self.db.atomic():
            journal_id = conn.execute(
                "INSERT INTO sync_journal (run_id, sync, ops, changes, size, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'sent', ?)",
                (self.run_id, plan.sync, batch.ops, batch.journal, len(batch), now),
            ).lastrowid
            conn.execute(self.mark_pending, (plan.sync, plan.config_hash, self.run_id,
                                             _pending_reason(journal_id), now, *span))
        assert journal_id is not None
        return journal_id

    def outcomes(self, answered: list[tuple[int, SendBatch, _Sent]]) -> None:
        """Record the outcomes of the batches answered since the last call, in one
        transaction: move the baseline for what was confirmed, keep the rest in
        ``sync_outcomes``, log every record and close each batch's journal row.

        One statement per table covers every fully confirmed batch (``executemany`` over their
        seq ranges); a batch with unconfirmed keys lists just those keys, one row each.
        """
        plan, conn, result, now = self.plan, self.conn, self.result, utcnow()
        sync, cfg, run = plan.sync, plan.config_hash, self.run_id
        whole = [(batch, sent) for _id, batch, sent in answered if not sent.unconfirmed]
        with self.db.atomic():
            for _id, batch, sent in answered:
                if not sent.unconfirmed:
                    continue
                conn.executemany(self.mark_unconfirmed, [
                    (status, reason, now, sync, key) for key, status, reason in sent.unconfirmed
                ])
                span = (batch.first, batch.last)
                if sent.confirmed["add"] or sent.confirmed["update"]:
                    conn.execute(self.acknowledge_confirmed, (sync, cfg, run, now, sync, *span))
                if sent.confirmed["remove"]:
                    conn.execute(self.unlist_confirmed, (sync, sync, *span))
                conn.execute(self.log_each, (run, sync, now, sync, *span))
            upserts = [(sync, cfg, run, now, b.first, b.last) for b, s in whole
                       if s.confirmed["add"] or s.confirmed["update"]]
            if upserts:
                conn.executemany(self.acknowledge, upserts)
            removals = [(sync, b.first, b.last) for b, s in whole if s.confirmed["remove"]]
            if removals:
                conn.executemany(self.unlist, removals)
            if whole:
                conn.executemany(self.log_ok, [(run, sync, now, b.first, b.last)
                                               for b, _s in whole])
            conn.executemany(self.settle, [(sync, b.low, b.high, _pending_reason(journal_id))
                                           for journal_id, b, _s in answered])
            conn.executemany(
                "UPDATE sync_journal SET state = ?, calls = ?, error = ?, finished_at = ? "
                "WHERE id = ?",
                [("failed" if s.error else "done", s.calls, s.error, now, journal_id)
                 for journal_id, _b, s in answered],
            )
        for _id, _batch, sent in answered:
            result.write_calls += sent.calls
            result.added += sent.confirmed["add"]
            result.updated += sent.confirmed["update"]
            result.removed += sent.confirmed["remove"]
            for _key, status, _reason in sent.unconfirmed:
                if status == "rejected":
                    result.rejected += 1
                else:
                    result.failed += 1

    def not_sent(self, after_seq: int, error: str) -> None:
        """Log the changes a failed destination never received; the baseline and outcomes are
        untouched, so they are simply in the next plan."""
        plan = self.plan
        cursor = self.db.execute(
            f"INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
            f"SELECT ?, ?, key, op, 'failed', ?, ? FROM {plan.table} "
            f"WHERE class = 'send' AND seq > ?",
            [self.run_id, plan.sync, f"not sent: {error}", utcnow(), after_seq],
        )
        self.result.failed += cursor.rowcount

    def finish(self) -> None:
        """Log held removals and forget outcomes the plan found stale (the key is in sync, or
        neither wanted nor acknowledged any more)."""
        plan, now = self.plan, utcnow()
        with self.db.atomic():
            # Both statements run on every push, so neither may scan the plan table: most of
            # it is unchanged members, and a scan cost tens of milliseconds per push.
            if plan.held:
                self.db.execute(
                    f"INSERT INTO sync_log (run_id, sync, key, op, outcome, reason, at) "
                    f"SELECT ?, ?, key, op, 'held', reason, ? FROM {plan.table} "
                    "WHERE class = 'held'",
                    [self.run_id, plan.sync, now],
                )
            # Driven by the (small) outcomes table, probing the plan table by its unique key.
            self.db.execute(
                f"DELETE FROM sync_outcomes WHERE sync = ? AND EXISTS (SELECT 1 FROM "
                f"{plan.table} p WHERE p.key = sync_outcomes.key "
                "AND p.class IN ('unchanged', 'stale'))",
                [plan.sync],
            )


def push(
    db: Database,
    plan: Plan,
    destination: Destination,
    run_id: int,
    *,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Send ``plan`` to ``destination`` and record the outcomes under ``run_id``.

    A plan with nothing to send makes no destination call at all, not even ``ensure_target``:
    a quiet run must cost no API quota. ``progress(done, total)`` is called on the calling
    thread after each batch is recorded.
    """
    policy = retry or RetryPolicy()
    result = SyncResult(
        sync=plan.sync,
        invalid=plan.invalid,
        held=plan.held,
        unchanged=plan.unchanged,
        suppressed=plan.suppressed,
        released=plan.released,
    )
    recorder = _Recorder(db, plan, run_id, result)
    recorder.prepare()
    # Releasing and cleaning up are store-only, so they happen even on a quiet run.
    if plan.previous_target is not None:
        recorder.release()
    if plan.to_send:
        # The calling thread and the workers share one GIL; a cyclic collection pausing it
        # (≈ 27 ms on a 50,000-change push) stalls every worker's next batch.
        with paused_gc():
            _deliver(recorder, plan, destination, policy, progress)
    recorder.finish()
    # Held first: only an operator can clear it, while failures retry on their own next run.
    if plan.held:
        result.status = "held"
    elif result.error:
        result.status = "failed"
    elif result.rejected or result.failed:
        result.status = "partial"
    return result


def _deliver(
    recorder: _Recorder,
    plan: Plan,
    destination: Destination,
    policy: RetryPolicy,
    progress: Progress | None,
) -> None:
    result, caps = recorder.result, plan.capabilities
    try:
        target = policy.call(destination.ensure_target, plan.target, dict(plan.settings.options))
    except (RetriableError, FatalError) as exc:
        # Without a target nothing can be sent; the whole plan stays for the next run.
        result.error = f"target {plan.target!r}: {exc}"
        recorder.not_sent(0, result.error)
        return
    recorder.record_target(target.remote_id)

    cap = max(1, caps.max_concurrency)
    batches = plan.send_batches(max(1, caps.max_batch))
    # Batches read ahead of need, so a worker that answers is handed its next batch after
    # only the journal write; at most ``cap`` wait, the most that could be sent at once.
    ready: deque[SendBatch] = deque()
    exhausted = False
    in_flight: dict[Future[_Sent], tuple[int, SendBatch]] = {}
    last_seq = done = 0

    def read_ahead() -> bool:
        nonlocal exhausted
        batch = None if exhausted else next(batches, None)
        if batch is None:
            exhausted = True
            return False
        ready.append(batch)
        return True

    def top_up() -> None:
        # Journal each batch before it leaves.
        nonlocal last_seq
        while result.error is None and len(in_flight) < cap and (ready or read_ahead()):
            batch = ready.popleft()
            last_seq = batch.last
            journal_id = recorder.journal(batch)
            future = pool.submit(_send, destination, target, batch, policy)
            in_flight[future] = (journal_id, batch)

    with ThreadPoolExecutor(max_workers=cap, thread_name_prefix=f"segsync-{plan.sync}") as pool:
        top_up()
        while in_flight:
            # While every worker is busy, read the next batches rather than wait idle.
            while len(ready) < cap and not any(f.done() for f in in_flight) and read_ahead():
                pass
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            answered = []
            for future in finished:
                journal_id, batch = in_flight.pop(future)
                # A worker exception other than the connector errors is a bug: let it out,
                # leaving the batch pending, exactly like a crash.
                sent = future.result()
                if sent.error and result.error is None:
                    result.error = sent.error
                answered.append((journal_id, batch, sent))
            # Refill before recording, so the destination is not kept waiting on the store.
            top_up()
            recorder.outcomes(answered)
            if progress is not None:
                for _id, batch, _sent in answered:
                    done += len(batch)
                    progress(done, plan.to_send)
    if result.error is not None:
        recorder.not_sent(last_seq, result.error)


def _log_filter(run_id, sync, key, outcome) -> tuple[str, list[Any]]:
    where, params = [], []
    for column, value in (("run_id", run_id), ("sync", sync), ("key", key), ("outcome", outcome)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def sync_log_rows(
    db: Database,
    run_id: int | None = None,
    sync: str | None = None,
    key: str | None = None,
    outcome: str | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Row-level history for ``segsync log``, newest first, filtered by any of the arguments."""
    where, params = _log_filter(run_id, sync, key, outcome)
    sql = "SELECT run_id, sync, key, op, outcome, reason, at FROM sync_log" + where
    sql += " ORDER BY rowid DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def sync_log_count(db: Database, run_id: int | None = None, sync: str | None = None,
                   key: str | None = None, outcome: str | None = None) -> int:
    """How many log rows match the filters of :func:`sync_log_rows`, before any limit."""
    where, params = _log_filter(run_id, sync, key, outcome)
    return db.execute("SELECT count(*) FROM sync_log" + where, params).fetchone()[0]


def sync_logged(db: Database, sync: str) -> bool:
    """Whether the log holds rows for ``sync``, which may since have left the config."""
    row = db.execute("SELECT 1 FROM sync_log WHERE sync = ? LIMIT 1", [sync]).fetchone()
    return row is not None
