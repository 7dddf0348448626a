"""``segsync forget``: erase a person from the store (right to erasure)."""

from __future__ import annotations

import typer

from ..store import run_lock
from ..sync import forget as erase
from .options import JsonOption, app_state
from .output import out, print_json


def register(app: typer.Typer) -> None:
    app.command()(forget)


def forget(
    ctx: typer.Context,
    identifier: str = typer.Argument(..., help="The person's email address or phone number."),
    as_json: bool = JsonOption,
) -> None:
    """Erase a person from the store (right to erasure); the next run removes them from every
    destination. Forget the same identifier again after that run to scrub its log rows."""
    state = app_state(ctx)
    with run_lock(state.settings.store.path):
        result = erase(state.db, identifier, state.settings.store.default_region)
    if as_json:
        print_json(result.as_dict())
        return
    out.print(f"forgot {result.identifier}: {result.people} people, {result.customers} source "
              f"records, {result.orders} orders, {result.rejects} rejected rows; "
              f"{result.log_rows} log rows scrubbed", markup=False)
    if result.pending_removals:
        out.print(f"{result.pending_removals} destination memberships will be removed by the "
                  "next 'segsync run'", markup=False)
