"""Bookkeeping of runs: one ``runs`` row per command that changes the store.

Besides opening and closing rows, this is where a run is read back for people and monitors:
:func:`run_summary_text` (the one line ``segsync status`` and the alerts show) and
:func:`staleness` (``segsync status --fail-if-older-than``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from .errors import Interrupted, SegsyncError
from .store import utcnow


@dataclass
class Run:
    """An open run. Commands fill ``summary`` and ``exit_code``; :func:`recorded` closes it."""

    id: int
    command: str
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    status: str = "ok"


@contextlib.contextmanager
def recorded(db: Database, command: str, as_of: str | None = None) -> Iterator[Run]:
    """Open a ``runs`` row, and close it with the outcome even when the command fails.

    Called only under the run lock (:func:`~segsync.core.store.run_lock`), so a row still
    ``running`` here belongs to a process that died without closing it (SIGKILL, the OOM
    killer, a power cut): it is marked ``killed``, or ``status`` and the alerts would show it
    running forever. A run stopped by Ctrl-C or SIGTERM (:class:`~.errors.Interrupted`) is
    closed as ``interrupted`` with exit code 1.
    """
    db.execute("UPDATE runs SET status = 'killed' WHERE status = 'running' "
               "AND finished_at IS NULL")
    run_id = db.execute(
        "INSERT INTO runs(command, started_at, status, as_of) VALUES (?, ?, 'running', ?)",
        [command, utcnow(), as_of],
    ).lastrowid
    run = Run(id=run_id, command=command)
    try:
        yield run
    except SegsyncError as exc:
        run.status, run.exit_code = "failed", exc.exit_code
        run.summary.setdefault("error", str(exc))
        raise
    except (Interrupted, KeyboardInterrupt) as exc:
        run.status, run.exit_code = "interrupted", Interrupted.exit_code
        run.summary.setdefault("error", str(exc) or "interrupted")
        raise
    except BaseException as exc:
        run.status, run.exit_code = "failed", 1
        run.summary.setdefault("error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, exit_code = ?, summary = ? WHERE id = ?",
            [utcnow(), run.status, run.exit_code, json.dumps(run.summary, default=str), run.id],
        )


_COLUMNS = ("id", "command", "started_at", "finished_at", "status", "exit_code", "as_of")


def _runs(db: Database, where: str, params: list[Any], limit: int) -> list[dict[str, Any]]:
    rows = db.execute(
        f"SELECT {', '.join(_COLUMNS)}, summary FROM runs {where} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    out = []
    for row in rows:
        item = dict(zip(_COLUMNS, row[:-1], strict=True))
        item["summary"] = json.loads(row[-1]) if row[-1] else {}
        out.append(item)
    return out


def _newest(db: Database, where: str, params: list[Any]) -> dict[str, Any] | None:
    found = _runs(db, where, params, 1)
    return found[0] if found else None


def recent_runs(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    return _runs(db, "", [], limit)


def get_run(db: Database, run_id: int) -> dict[str, Any] | None:
    """One run as :func:`recent_runs` shows it, or None."""
    return _newest(db, "WHERE id = ?", [run_id])


def previous_run(db: Database, run_id: int, command: str) -> dict[str, Any] | None:
    """The ``command`` run recorded just before ``run_id``, or None for the first one."""
    return _newest(db, "WHERE command = ? AND id < ?", [command, run_id])


def run_summary_text(summary: dict) -> str:
    """A run's summary in one line: what came in and what went out."""
    if summary.get("error"):
        return str(summary["error"])
    sources = summary.get("sources") or []
    parts = []
    if sources:
        parts.append(f"pulled {sum(s['customers'] for s in sources)} customers, "
                     f"{sum(s['orders'] for s in sources)} orders, "
                     f"{sum(s['rejected'] for s in sources)} rejected")
    syncs = summary.get("syncs") or []
    if syncs:
        total = {k: sum(s.get(k, 0) or 0 for s in syncs)
                 for k in ("added", "updated", "removed", "rejected", "failed", "held")}
        parts.append(f"{len(syncs)} syncs: +{total['added']} ~{total['updated']} "
                     f"-{total['removed']}, {total['rejected']} rejected, "
                     f"{total['failed']} failed, {total['held']} held")
    return "; ".join(parts)


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``26h``, ``2d``, ``1d12h``: a positive duration with a unit on every number.

    Units are s, m (minutes, unlike the segment language's months), h, d and w. A bare number
    is refused: a monitor meant to fire after 26 hours must not fire after 26 seconds.
    """
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise ValueError(f"{text!r} is not a duration; write a number and a unit, such as "
                         "90m, 26h or 2d")
    duration = dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
    if not duration:
        raise ValueError(f"{text!r} is zero; give a duration such as 26h")
    return duration


def last_successful_run(db: Database, command: str = "run") -> dict[str, Any] | None:
    """The newest ``command`` run that exited 0, or None.

    Only exit 0 counts: a run that exited 1 (something failed) or 4 (removals held for an
    operator) left work undone, and one that never finished was killed.
    """
    return _newest(db, "WHERE command = ? AND exit_code = 0 AND finished_at IS NOT NULL",
                   [command])


def _span(delta: dt.timedelta) -> str:
    """A duration as people read it on a dashboard: ``40s``, ``45m``, ``30h 5m``, ``3d 4h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes}m"
    if hours < 48:
        return f"{hours}h" + (f" {minutes}m" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days}d" + (f" {hours}h" if hours else "")


def staleness(db: Database, max_age: dt.timedelta, now: dt.datetime | None = None,
              command: str = "run") -> str | None:
    """Why the store counts as stale (no ``command`` exited 0 within ``max_age``), or None.

    The age runs from the end of the last successful run. The message also names the newest
    run of that command when it is not the successful one, since that is where to look next.
    """
    now = now or dt.datetime.now(dt.UTC)
    last = last_successful_run(db, command)
    newest = _newest(db, "WHERE command = ?", [command])
    since = ""
    if newest and (last is None or newest["id"] != last["id"]):
        outcome = (f"exited {newest['exit_code']} ({newest['status']})"
                   if newest["exit_code"] is not None
                   else "has not finished (still running, or killed)")
        since = f"; the latest, run {newest['id']}, {outcome}"
    if last is None:
        return f"no successful 'segsync {command}' is recorded in this store{since}"
    age = now - dt.datetime.fromisoformat(last["finished_at"])
    if age <= max_age:
        return None
    return (f"the last successful 'segsync {command}', run {last['id']}, finished "
            f"{last['finished_at']}, {_span(age)} ago, more than {_span(max_age)}{since}")
