"""The scheduled job: pull → resolve → measure → segment → plan → push → record.

Each stage reads and writes the store, so a crash anywhere leaves a state the next run resumes
from. Stages fail independently: a failed source blocks only removals (an incomplete picture
must not empty a list), and a failing destination stops only its own syncs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from .connector import Destination, Source
from .errors import ConfigError, SegsyncError
from .ingest import SourceResult
from .measure import describe_gap, refresh_features, segments_done
from .segment import TEMPLATES, materialise
from .settings import Settings
from .sync import Plan, SyncResult, plan_sync, push, reconcile, scrub_log

log = logging.getLogger(__name__)


def resolve_as_of(settings: Settings, override: dt.date | None) -> dt.date:
    """The day segments are computed for: ``--as-of``, else the config's pin, else today in the
    shop's time zone (not the machine's: a UTC server must not end a New York day early)."""
    if override is not None:
        return override
    if settings.as_of is not None:
        return settings.as_of
    return dt.datetime.now(zoneinfo.ZoneInfo(settings.store.timezone)).date()


def measure_and_segment(db: Database, settings: Settings, as_of: dt.date,
                        run_id: int | None, *, full: bool = False,
                        ) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Bring the features, scores and predictions to ``as_of``, then every segment's membership.

    Incremental unless ``full`` (``--full-refresh``) or the stored state asks for a full build
    (:mod:`.measure.refresh`): only the people whose records changed or whose as-of-dependent
    attributes reach a boundary are recomputed, plus one global pass. Returns the segment sizes
    and who got predictions (the ``coverage`` of :func:`.measure.write_predictions`; None with
    predictions turned off). People a model cannot serve (no order yet, too little history, no
    convergence) get null predictions, so segments on other attributes still run; a model that
    could not be used is also a warning.
    """
    scoring = settings.scoring
    refreshed = refresh_features(db, as_of, scoring, full=full, clv_months=scoring.clv_months)
    coverage = refreshed["coverage"]
    for gap in (coverage or {}).get("missing", []):
        if gap["model"]:
            log.warning("predictions: %s", describe_gap(gap))
    sizes = materialise(db, settings.segments, as_of, run_id, TEMPLATES,
                        changed=refreshed["changed"])
    segments_done(db)
    return sizes, coverage


def removals_blocked(db: Database, sources: dict[str, Source],
                     pulled: list[SourceResult]) -> str | None:
    """Why removals must be held this run, or None: a source failed, or holds no data at all.

    A source whose files were all skipped as already imported still holds its data, so only an
    empty store-side picture counts as "empty", not a quiet pull.
    """
    failed = [r.name for r in pulled if r.status == "failed"]
    if failed:
        return f"source pull failed: {', '.join(failed)}"
    empty = [
        name for name in sources
        if db.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM customers WHERE source = ?) "
            "AND NOT EXISTS (SELECT 1 FROM orders WHERE source = ?)", [name, name]
        ).fetchone()[0]
    ]
    if empty:
        return f"source returned no data: {', '.join(empty)}"
    return None


@dataclass
class SyncReport:
    """One sync's plan and, when pushed, its result (or the error that stopped it)."""

    name: str
    plan: dict[str, Any] = field(default_factory=dict)
    result: SyncResult | None = None
    error: str | None = None
    reconcile: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        if self.error:
            return 1
        return self.result.exit_code if self.result else (4 if self.plan.get("held") else 0)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sync": self.name, **self.plan}
        if self.result is not None:
            out.update(self.result.as_dict())
        if self.reconcile is not None:
            out["reconcile"] = self.reconcile
        if self.error:
            out["status"], out["error"] = "failed", self.error
        return out


@contextmanager
def planned(db: Database, settings: Settings, name: str, destination: Destination,
            blocked: str | None, allow_large_removals: bool) -> Iterator[Plan]:
    sync = settings.syncs[name]
    plan = plan_sync(
        db, name, sync, destination,
        removals_blocked=blocked is not None,
        allow_large_removals=allow_large_removals,
        max_removal_share=settings.guardrails.max_removal_share,
    )
    try:
        yield plan
    finally:
        plan.close()


def plan_all(db: Database, settings: Settings, destinations: dict[str, Destination],
             blocked: str | None, allow_large_removals: bool,
             only: list[str] | None = None, sample: int = 0) -> list[SyncReport]:
    """Plans for every enabled sync, without sending anything; ``sample`` changes of each
    kind (send and held) are listed in the report."""
    reports = []
    for name in selected_syncs(settings, only):
        report = SyncReport(name)
        try:
            with planned(db, settings, name, destinations[settings.syncs[name].destination],
                         blocked, allow_large_removals) as plan:
                report.plan = plan_summary(plan, blocked)
                if sample:
                    report.plan["changes"] = [
                        {"op": c.op, "key": c.key, "fields": c.fields}
                        for c in itertools.islice(plan.changes(), sample)
                    ]
                    report.plan["held_changes"] = [
                        {"op": c.op, "key": c.key}
                        for c in itertools.islice(plan.changes(("held",)), sample)
                    ]
        except SegsyncError as exc:
            report.error = str(exc)
        reports.append(report)
    return reports


def push_all(db: Database, settings: Settings, destinations: dict[str, Destination],
             run_id: int, blocked: str | None, allow_large_removals: bool,
             only: list[str] | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             reconcile_first: bool = False,
             secrets: Iterable[str] = ()) -> list[SyncReport]:
    """Plan and push every enabled sync; one failing sync or destination never stops another.

    With ``reconcile_first`` each sync's baseline is first rewritten to what its target really
    holds, so the push also repairs changes made by hand at the destination. ``secrets`` (the
    credentials of the settings) are replaced by ``***`` wherever this run's log and the
    outcomes quote them: a service's error can echo a key, and the log is kept for months.
    """
    reports = []
    for name in selected_syncs(settings, only):
        report = SyncReport(name)
        destination = destinations[settings.syncs[name].destination]
        try:
            if reconcile_first:
                report.reconcile = reconcile(db, name, settings.syncs[name], destination,
                                             run_id=run_id).as_dict()
            with planned(db, settings, name, destination, blocked, allow_large_removals) as plan:
                report.plan = plan_summary(plan, blocked)
                report.result = push(
                    db, plan, destination, run_id,
                    progress=(lambda done, total, _n=name: progress(_n, done, total))
                    if progress else None,
                )
        except SegsyncError as exc:
            report.error = str(exc)
        except Exception as exc:  # a destination plugin's bug must not stop the other syncs
            log.debug("sync %s crashed", name, exc_info=True)
            report.error = f"{type(exc).__name__}: {exc}"
        reports.append(report)
    scrub_log(db, run_id, settings.store.default_region)
    _redact_reasons(db, run_id, secrets)
    return reports


def _redact_reasons(db: Database, run_id: int, secrets: Iterable[str]) -> None:
    # Longest first, so that a key containing a shorter one goes whole.
    with db.atomic():
        for secret in sorted(set(secrets), key=len, reverse=True):
            db.execute("UPDATE sync_log SET reason = replace(reason, :s, '***') "
                       "WHERE run_id = :run AND instr(reason, :s)", {"s": secret, "run": run_id})
            db.execute("UPDATE sync_outcomes SET reason = replace(reason, :s, '***') "
                       "WHERE instr(reason, :s)", {"s": secret})


def selected_syncs(settings: Settings, only: list[str] | None) -> list[str]:
    names = [n for n, s in settings.syncs.items() if s.enabled]
    if only:
        unknown = sorted(set(only) - set(settings.syncs))
        if unknown:
            raise ConfigError(f"no sync named {', '.join(unknown)} in the config")
        names = [n for n in names if n in only]
    return names


def plan_summary(plan: Plan, blocked: str | None) -> dict[str, Any]:
    summary = plan.summary()
    if plan.held and blocked:
        summary["held_reason"] = blocked
    return summary


def run_exit_code(pulled: list[SourceResult], reports: list[SyncReport]) -> int:
    """DESIGN §6: 4 while removals are held (an operator must decide), else 1 when a source,
    a file, a sync or some records failed, else 0."""
    codes = [r.exit_code for r in reports]
    if 4 in codes:
        return 4
    if any(c == 1 for c in codes) or any(r.status == "failed" or r.file_errors for r in pulled):
        return 1
    return 0


def close_all(connectors: dict[str, Source] | dict[str, Destination]) -> None:
    for connector in connectors.values():
        try:
            connector.close()
        except Exception:  # closing is best effort; the run's outcome is already decided
            log.debug("closing %s failed", connector.name, exc_info=True)

