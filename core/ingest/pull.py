"""The pull stage: run every source into the store, each independently, then resolve people.

A source that fails (a connector error, an unreadable folder, a bug in a plugin) is recorded
as failed with its reason and the others go on; the caller learns which sources failed, so a
run can refuse to produce removals from an incomplete picture (DESIGN §4 rule 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from ..connector import PullState, Source
from ..errors import SegsyncError
from ..records import Rejected
from ..settings import Settings
from .resolve import resolve
from .writer import IngestCounts, StoreWriter

log = logging.getLogger(__name__)

#: Called with (source name, records seen so far, the record just seen).
Progress = Callable[[str, int, Any], None]


@dataclass
class SourceResult:
    name: str
    status: str  # "ok", "partial" (some rows or files rejected), "failed"
    counts: IngestCounts = field(default_factory=IngestCounts)
    error: str | None = None
    #: Whole files refused (missing required column …), by origin → reason.
    file_errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "status": self.status,
            "error": self.error,
            "file_errors": self.file_errors,
            **self.counts.__dict__,
        }


def pull_sources(
    db: Database,
    settings: Settings,
    sources: dict[str, Source],
    run_id: int,
    *,
    full_refresh: bool = False,
    progress: Progress | None = None,
) -> list[SourceResult]:
    """Pull each source in turn, then resolve identities once over everything pulled."""
    results = [
        _pull_one(db, settings, name, source, run_id, full_refresh, progress)
        for name, source in sources.items()
    ]
    resolve(db, run_id, full=full_refresh)
    return results


def _pull_one(
    db: Database,
    settings: Settings,
    name: str,
    source: Source,
    run_id: int,
    full_refresh: bool,
    progress: Progress | None,
) -> SourceResult:
    cursors = {} if full_refresh else dict(
        db.execute("SELECT stream, value FROM source_cursors WHERE source = ?", [name]).fetchall()
    )
    seen = frozenset(
        r[0] for r in db.execute("SELECT sha256 FROM source_files WHERE source = ?", [name])
    ) if not full_refresh else frozenset()
    state = PullState(
        cursors=cursors,
        full_refresh=full_refresh,
        timezone=settings.store.timezone,
        default_region=settings.store.default_region,
        seen_files=seen,
        staged=True,
    )
    writer = StoreWriter(
        db, name, run_id=run_id, timezone=settings.store.timezone,
        default_region=settings.store.default_region,
    )
    result = SourceResult(name, "ok", writer.counts)
    n = 0
    try:
        for record in source.pull(state):
            writer.write(record)
            n += 1
            if isinstance(record, Rejected) and record.whole_file:
                result.file_errors[record.origin] = record.reason
            if progress is not None:
                progress(name, n, record)
        writer.flush()
    except SegsyncError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # a connector bug must not take the other sources down
        log.debug("source %s crashed", name, exc_info=True)
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        source.close()
    if result.status == "ok" and (result.counts.rejected or result.file_errors):
        result.status = "partial"
    db.execute(
        """INSERT OR REPLACE INTO source_runs(run_id, source, status, customers, orders,
           unchanged, rejected, files_skipped, suppressed, error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [run_id, name, result.status, result.counts.customers, result.counts.orders,
         result.counts.unchanged, result.counts.rejected, result.counts.files_skipped,
         result.counts.suppressed,
         result.error or ("; ".join(f"{k}: {v}" for k, v in result.file_errors.items()) or None)],
    )
    return result
