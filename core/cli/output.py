"""What every command prints through: consoles, tables, JSON, error lines and progress bars.

Output goes to stdout (tables, JSON) and diagnostics to stderr (errors, warnings, progress), so
``segsync run --json | jq`` and cron mail both read cleanly. Piped output gets wide tables
instead of rich's 80-column default.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 160))
err = Console(stderr=True, highlight=False, width=_WIDTH)
out = Console(highlight=False, width=_WIDTH)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (dates and paths as strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(columns: list[str], rows: list[list[Any]], title: str | None = None
          ) -> Table | Group:
    """A rich table of ``rows``; ``None`` shows as an empty cell.

    When the table does not fit the terminal unwrapped, the rows come as lines instead,
    ``name: heading value, heading value``: rich would otherwise squeeze the columns until
    names and numbers end in "…" or fall off the right edge.
    """
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in cells:
        t.add_row(*row)
    if Measurement.get(out, out.options.update(max_width=10_000), t).maximum <= out.width:
        return t
    lines = [Text(title, style="bold")] if title else []
    lines += [Text(f"{row[0]}: " + ", ".join(f"{col} {value}" for col, value
                                             in zip(columns[1:], row[1:], strict=True)))
              for row in cells]
    return Group(*lines)


def error(message: str) -> None:
    """One error line on stderr; the message is printed as is, never as markup."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def warning(message: str) -> None:
    """One warning line on stderr, printed as is."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def progress_bars(enabled: bool) -> Progress:
    """A progress display on stderr for long pulls and pushes; silent when not wanted."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled,
    )
