"""``segsync status`` and ``log``: what the store holds and what was sent where."""

from __future__ import annotations

import typer

from ..ingest import normalise_email, normalise_phone, people_count, rejected_rows, source_stats
from ..runs import recent_runs
from ..sync import sync_log_rows
from .options import JsonOption, app_state
from .output import out, print_json, table


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(log)


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


def status(
    ctx: typer.Context,
    as_json: bool = JsonOption,
    rejects: bool = typer.Option(False, "--rejects", help="List rejected rows."),
    limit: int = typer.Option(10, help="How many runs (and rejected rows) to show."),
) -> None:
    """Recent runs and, per source, what the store holds."""
    state = app_state(ctx)
    data = {
        "store": str(state.settings.store.path),
        "people": people_count(state.db),
        "sources": source_stats(state.db),
        "runs": recent_runs(state.db, limit),
    }
    if rejects:
        data["rejects"] = rejected_rows(state.db, limit)
    if as_json:
        print_json(data)
        return
    out.print(f"store {data['store']}: {data['people']:,} people")
    out.print(table(
        ["source", "customers", "orders", "lines", "amount", "rejected", "files"],
        [[k, f"{v['customers']:,}", f"{v['orders']:,}", f"{v['order_lines']:,}",
          f"{v['orders_total_amount']:,.2f}", f"{v['rejected']:,}", v["files_imported"]]
         for k, v in data["sources"].items()],
        title="sources",
    ))
    out.print(table(
        ["run", "command", "started", "status", "exit", "summary"],
        [[r["id"], r["command"], r["started_at"], r["status"], r["exit_code"],
          run_summary_text(r["summary"])] for r in data["runs"]],
        title="recent runs",
    ))
    if rejects:
        out.print(table(["source", "origin", "field", "reason"],
                        [list(r.values()) for r in data["rejects"]], title="rejected rows"))


def log(
    ctx: typer.Context,
    run_id: int | None = typer.Option(None, "--run", help="Only this run."),
    sync: str | None = typer.Option(None, "--sync", help="Only this sync."),
    key: str | None = typer.Option(None, "--key", help="Only this email or phone."),
    outcome: str | None = typer.Option(
        None, "--outcome", help="Only this outcome (ok, rejected, failed, …)."),
    limit: int = typer.Option(100, help="How many rows, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Row-level history of what was sent where, with outcomes and reasons."""
    state = app_state(ctx)
    if key is not None:
        key = normalise_email(key)[0] or normalise_phone(
            key, state.settings.store.default_region)[0] or key
    rows = sync_log_rows(state.db, run_id=run_id, sync=sync, key=key, outcome=outcome,
                         limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no log rows match")
        return
    columns = list(rows[0])
    out.print(table(columns, [[r[c] for c in columns] for r in rows]))
