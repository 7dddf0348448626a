"""``segsync run`` and ``plan``: the scheduled job, and what it would do."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from ..alerts import alerting, redact, secret_values
from ..ingest import pull_sources
from ..measure import coverage_lines
from ..report import write_report
from ..runner import (
    close_all,
    measure_and_segment,
    plan_all,
    push_all,
    removals_blocked,
    resolve_as_of,
    run_exit_code,
)
from ..runs import recorded
from ..store import run_lock
from ..sync.gate import CONSENT_LABELS
from .options import AsOfOption, JsonOption, SyncOption, app_state, as_date, require_known
from .output import error, out, print_json, progress_bars, table, warning
from .pull import rejects_line, report_sources


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(plan)


#: The consent summary's machine keys (``--json``: ``syncs[].consent``) and their headings.
CONSENT_KEYS = CONSENT_LABELS


def run(
    ctx: typer.Context,
    as_of: dt.datetime | None = AsOfOption,
    allow_large_removals: bool = typer.Option(
        False, "--allow-large-removals",
        help="Send removals a guardrail would hold (above max_removal_share).",
    ),
    full_refresh: bool = typer.Option(
        False, "--full-refresh",
        help="Re-read every source from the start and recompute every person and segment.",
    ),
    no_pull: bool = typer.Option(False, "--no-pull", help="Skip the pull; use the store as is."),
    reconcile: bool = typer.Option(
        False, "--reconcile",
        help="Read each target's members first and repair changes made at the destination.",
    ),
    sync: list[str] = SyncOption,
    as_json: bool = JsonOption,
    report_path: Path | None = typer.Option(
        None, "--report", metavar="PATH", help="Write the HTML report (segsync report) here "
                                               "after the run."),
) -> None:
    """The scheduled job: pull, segment, push changes.

    Run the whole job: pull, resolve, measure, segment, and push membership changes.

    \b
    Example:
      segsync run --config segsync.toml
      segsync run --sync vip_list --no-pull
    """
    state = app_state(ctx)
    settings = state.settings
    require_known("sync", sync, settings.syncs)
    sources, destinations = state.connectors()
    day = resolve_as_of(settings, as_date(as_of))
    db = state.db
    # A service's error can quote a credential: kept out of the run's summary and stderr.
    secrets = secret_values(settings, sources, destinations)
    try:
        with alerting(settings, db, secrets) as watch, \
                run_lock(settings.store.path), recorded(db, "run", day.isoformat()) as record:
            watch.run = record
            with progress_bars(not as_json) as progress:
                tasks: dict[str, int] = {}

                def tick(name: str, done: int, total: int | None = None) -> None:
                    if name not in tasks:
                        tasks[name] = progress.add_task(name, total=total)
                    progress.update(tasks[name], completed=done, total=total)

                pulled = [] if no_pull else pull_sources(
                    db, settings, sources, record.id, full_refresh=full_refresh,
                    progress=lambda name, n, _r: n % 500 == 0 and tick(f"pull {name}", n),
                )
                blocked = removals_blocked(db, sources, pulled)
                sizes, coverage = measure_and_segment(db, settings, day, record.id,
                                                      full=full_refresh)
                reports = push_all(
                    db, settings, destinations, record.id, blocked, allow_large_removals,
                    only=sync, progress=lambda name, done, total: tick(f"push {name}", done,
                                                                       total),
                    reconcile_first=reconcile, secrets=secrets,
                )
            record.exit_code = run_exit_code(pulled, reports)
            record.status = {0: "ok", 1: "partial", 4: "held"}[record.exit_code]
            record.summary = redact({
                "as_of": day.isoformat(),
                "sources": [r.as_dict() for r in pulled],
                "removals_blocked": blocked,
                "segments": sizes,
                "predictions": coverage,
                "syncs": [r.as_dict() for r in reports],
            }, secrets)
    finally:
        close_all(sources)
        close_all(destinations)
    if as_json:
        print_json({"run_id": record.id, "exit_code": record.exit_code, **record.summary})
    else:
        _print_run(record.id, record.summary)
    if report_path is not None:
        write_report(db, settings, day, report_path)
    line = None if as_json else rejects_line(pulled, state.config)
    report_sources(pulled, rejected_shown=line is not None)
    for report in reports:
        if report.error:
            error(redact(f"sync {report.name}: {report.error}", secrets))
        elif report.result and report.result.error:
            error(redact(f"sync {report.name}: {report.result.error}", secrets))
        if report.exit_code == 4:
            warning(f"sync {report.name}: {report.plan.get('held')} removals held "
                    f"({report.plan.get('held_reason')}); rerun with --allow-large-removals "
                    "to send them")
    if line:
        out.print(line, style="bold yellow", markup=False, soft_wrap=True)
    raise typer.Exit(record.exit_code)


def _print_run(run_id: int, summary: dict) -> None:
    out.print(f"run {run_id} as of {summary['as_of']}")
    if summary["sources"]:
        out.print(table(
            ["source", "status", "customers", "orders", "rejected", "skipped files"],
            [[s["source"], s["status"], s["customers"], s["orders"], s["rejected"],
              s["files_skipped"]] for s in summary["sources"]],
        ))
    out.print(table(["segment", "members"], [[k, v] for k, v in summary["segments"].items()]))
    if summary["predictions"]:
        for line in coverage_lines(summary["predictions"]):
            out.print(line, markup=False)
    out.print(table(
        ["sync", "status", "added", "updated", "removed", "rejected", "failed", "held",
         "calls"],
        [[s["sync"], s.get("status", "-"), s.get("added", 0), s.get("updated", 0),
          s.get("removed", 0), s.get("rejected", 0), s.get("failed", 0), s.get("held", 0),
          s.get("write_calls", 0)] for s in summary["syncs"]],
    ))
    _print_consent(summary["syncs"])


def _print_consent(syncs: list[dict]) -> None:
    """Who in each sync's segment may be sent, and why the others may not, in plain words."""
    rows = [[s["sync"], *(s["consent"].get(k, 0) for k in CONSENT_KEYS)]
            for s in syncs if s.get("consent")]
    if rows:
        out.print(table(["sync", *CONSENT_KEYS.values()], rows, title="consent"))


def plan(
    ctx: typer.Context,
    as_of: dt.datetime | None = AsOfOption,
    allow_large_removals: bool = typer.Option(False, "--allow-large-removals",
                                              help="Plan as if large removals were allowed."),
    sync: list[str] = SyncOption,
    limit: int = typer.Option(20, help="How many changes of each sync to list."),
    as_json: bool = JsonOption,
) -> None:
    """Show what a run would change; changes nothing.

    Features and segments are recomputed from the store inside a transaction that is rolled
    back, so the plan reflects today's data and the store is left exactly as it was. It does
    not pull: run 'segsync pull' first for fresh data.

    \b
    Example:
      segsync plan --sync vip_list --json
    """
    state = app_state(ctx)
    settings = state.settings
    require_known("sync", sync, settings.syncs)
    _, destinations = state.connectors()
    day = resolve_as_of(settings, as_date(as_of))
    db = state.db
    with run_lock(settings.store.path):
        db.execute("BEGIN")
        try:
            sizes, _ = measure_and_segment(db, settings, day, None)
            reports = plan_all(db, settings, destinations, None, allow_large_removals,
                               only=sync, sample=limit)
        finally:
            db.conn.rollback()
    data = redact({"as_of": day.isoformat(), "segments": sizes,
                   "syncs": [r.as_dict() for r in reports]},
                  secret_values(settings, destinations))
    if as_json:
        print_json(data)
    else:
        for r in data["syncs"]:
            if r.get("error"):
                error(f"sync {r['sync']}: {r['error']}")
                continue
            out.print(f"[bold]{r['sync']}[/bold] → {r['destination']}:{r['target']}: "
                      f"+{r['adds']} add, ~{r['updates']} update, -{r['removes']} remove, "
                      f"{r['held']} held, {r['unchanged']} unchanged")
            out.print("    consent: " + ", ".join(
                f"{r['consent'].get(k, 0)} {label}" for k, label in CONSENT_KEYS.items()),
                markup=False)
            for c in r.get("changes", []):
                out.print(f"    {c['op']:<6} {c['key']}", markup=False)
            if r["adds"] + r["updates"] + r["removes"] > len(r.get("changes", [])):
                out.print("    … (--limit to see more)", markup=False)
            for c in r.get("held_changes", []):
                out.print(f"    held   {c['op']:<6} {c['key']}", markup=False)
            for reason, n in r.get("invalid_reasons", {}).items():
                out.print(f"    held out: {n} × {reason}", markup=False)
    raise typer.Exit(4 if any(r.get("held") for r in data["syncs"]) else 0)
