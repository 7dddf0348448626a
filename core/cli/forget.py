"""``segsync forget``: erase a person from the store (right to erasure)."""

from __future__ import annotations

import typer
from sqlite_utils import Database

from ..errors import ConfigError
from ..ingest import suppression_counts
from ..store import run_lock
from ..sync import forget as erase
from .options import JsonOption, app_state
from .output import out, print_json


def register(app: typer.Typer) -> None:
    app.command()(forget)


def forget(
    ctx: typer.Context,
    identifier: str | None = typer.Argument(
        None, help="The person's email address or phone number."),
    list_: bool = typer.Option(
        False, "--list", help="Show how many identifiers are suppressed and records dropped."),
    as_json: bool = JsonOption,
) -> None:
    """Erase a person from the store and destinations.

    Erase a person from the store (right to erasure); the next run removes them from every
    destination (logging the removal under a stand-in, not the address), and later pulls drop
    their records. 'segsync forget --list' counts what is suppressed.

    \b
    Example:
      segsync forget ann@example.com
    """
    state = app_state(ctx)
    if list_:
        _list(state.db, as_json)
        return
    if identifier is None:
        raise ConfigError("forget needs an email address or phone number (or --list)")
    with run_lock(state.settings.store.path):
        result = erase(state.db, identifier, state.settings.store.default_region)
    if as_json:
        print_json(result.as_dict())
        return
    out.print(f"forgot {result.identifier}: {result.people} people, {result.customers} source "
              f"records, {result.orders} orders, {result.rejects} rejected rows; "
              f"{result.log_rows} log rows scrubbed; {result.suppressed} identifiers and record "
              "keys suppressed at ingest", markup=False)
    if result.pending_removals:
        out.print(f"{result.pending_removals} destination memberships will be removed by the "
                  "next 'segsync run'", markup=False)


def _list(db: Database, as_json: bool) -> None:
    """The suppression list in numbers: it holds digests only, so there is nothing else to
    show, which is the point."""
    counts = suppression_counts(db)
    dropped = db.execute("SELECT coalesce(sum(suppressed), 0) FROM source_runs").fetchone()[0]
    if as_json:
        print_json({"suppressed": counts, "total": sum(counts.values()),
                    "records_dropped": dropped})
        return
    out.print(f"{sum(counts.values())} suppressed: {counts['email']} emails, {counts['phone']} "
              f"phones, {counts['link_id']} link ids, {counts['record']} source records; "
              f"{dropped} incoming records dropped by pulls", markup=False)
