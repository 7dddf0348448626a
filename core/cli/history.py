"""``segsync status`` and ``log``: what the store holds and what was sent where."""

from __future__ import annotations

import typer

from ..ingest import normalise_email, normalise_phone
from ..report import status_data
from ..runs import parse_duration, run_summary_text, staleness
from ..sync import sync_log_rows
from .options import JsonOption, app_state
from .output import error, out, print_json, table


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(log)


def status(
    ctx: typer.Context,
    as_json: bool = JsonOption,
    rejects: bool = typer.Option(False, "--rejects", help="List rejected rows."),
    limit: int = typer.Option(10, help="How many runs (and rejected rows) to show."),
    fail_if_older_than: str | None = typer.Option(
        None, "--fail-if-older-than", metavar="DURATION",
        help="Exit 1 when no 'segsync run' exited 0 within DURATION (90m, 26h, 2d): for "
             "monitoring.",
    ),
) -> None:
    """Recent runs and, per source, what the store holds."""
    state = app_state(ctx)
    try:
        max_age = parse_duration(fail_if_older_than) if fail_if_older_than else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-if-older-than") from None
    data = status_data(state.db, state.settings.store.path, limit, rejects)
    stale = staleness(state.db, max_age) if max_age else None
    if max_age:
        data["stale"] = stale
    if as_json:
        print_json(data)
    else:
        _print_status(data, rejects)
    if stale:
        error(stale)
        raise typer.Exit(1)


def _print_status(data: dict, rejects: bool) -> None:
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
