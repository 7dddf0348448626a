"""Bookkeeping of runs: one ``runs`` row per command that changes the store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from .errors import SegsyncError
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
    """Open a ``runs`` row, and close it with the outcome even when the command fails."""
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
    except BaseException as exc:
        run.status, run.exit_code = "failed", 1
        run.summary.setdefault("error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, exit_code = ?, summary = ? WHERE id = ?",
            [utcnow(), run.status, run.exit_code, json.dumps(run.summary, default=str), run.id],
        )


def recent_runs(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT id, command, started_at, finished_at, status, exit_code, as_of, summary "
        "FROM runs ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    keys = ("id", "command", "started_at", "finished_at", "status", "exit_code", "as_of")
    out = []
    for row in rows:
        item = dict(zip(keys, row[:-1], strict=True))
        item["summary"] = json.loads(row[-1]) if row[-1] else {}
        out.append(item)
    return out
