"""``segsync report``: the store as one self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import webbrowser
from pathlib import Path

import typer

from ..report import write_report
from ..runner import resolve_as_of
from .options import AsOfOption, app_state, as_date
from .output import out, warning

OutOption = typer.Option(Path("report.html"), "--out", "-o", help="Where to write the page.")


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    ctx: typer.Context,
    out_path: Path = OutOption,
    as_of: dt.datetime | None = AsOfOption,
    open_page: bool = typer.Option(False, "--open", help="Open the page in a browser."),
) -> None:
    """Write the store as one self-contained HTML page.

    Segment sizes, RFM, lifecycle, predictions, sync health and data quality as one HTML file
    that opens with no network.

    \b
    Example:
      segsync report --out out/report.html --open
    """
    state = app_state(ctx)
    day = resolve_as_of(state.settings, as_date(as_of))
    size = write_report(state.db, state.settings, day, out_path)
    out.print(f"wrote {out_path} ({size / 1024:,.0f} KB)", markup=False)
    if open_page:
        uri = out_path.resolve().as_uri()
        # False when no browser is registered (a server, a container): say so, do not fail.
        if not webbrowser.open(uri):
            warning(f"no browser found to open the report; open {uri} yourself")
