"""``segsync pull``: import from the sources into the store, and how a pull is reported."""

from __future__ import annotations

import typer

from ..errors import ConfigError
from ..ingest import SourceResult, pull_sources
from ..runs import recorded
from ..store import run_lock
from .options import JsonOption, StrictOption, app_state
from .output import err, error, out, print_json, progress_bars, table, warning


def register(app: typer.Typer) -> None:
    app.command()(pull)


def pull_exit_code(results: list[SourceResult], strict: bool) -> int:
    """1 when a source failed or a whole file was refused (an operator must act); rejected rows
    are reported and kept in the store but exit 0 unless ``--strict``: re-running cannot fix
    them, and exports routinely hold rows that are not customer data (anonymous sales)."""
    if any(r.status == "failed" or r.file_errors for r in results):
        return 1
    return 1 if strict and any(r.counts.rejected for r in results) else 0


def pull(
    ctx: typer.Context,
    source: list[str] = typer.Option(None, "--source", "-s", help="Only these sources."),
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Ignore cursors and re-read files already imported."
    ),
    strict: bool = StrictOption,
    as_json: bool = JsonOption,
) -> None:
    """Pull customers and orders from the configured sources into the store."""
    state = app_state(ctx)
    sources, _ = state.connectors()
    if source:
        unknown = sorted(set(source) - set(sources))
        if unknown:
            raise ConfigError(f"no source named {', '.join(unknown)} in the config")
        sources = {k: v for k, v in sources.items() if k in source}
    if not sources:
        raise ConfigError("no sources configured; add a [sources.NAME] table")
    settings, db = state.settings, state.db
    with run_lock(settings.store.path), recorded(db, "pull") as run:
        with progress_bars(not as_json) as progress:
            tasks: dict[str, int] = {}

            def tick(name: str, n: int, _record: object) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(f"pulling {name}", total=None)
                if n % 500 == 0:
                    progress.update(tasks[name], completed=n)

            results = pull_sources(db, settings, sources, run.id, full_refresh=full_refresh,
                                   progress=tick)
        run.summary = {"sources": [r.as_dict() for r in results]}
        run.exit_code = pull_exit_code(results, strict)
        run.status = "ok" if all(r.status == "ok" for r in results) else "partial"
    if as_json:
        print_json({"run_id": run.id, **run.summary})
    else:
        rows = [
            [r.name, r.status, r.counts.customers, r.counts.orders, r.counts.unchanged,
             r.counts.rejected, r.counts.files_imported, r.counts.files_skipped]
            for r in results
        ]
        out.print(table(["source", "status", "customers", "orders", "unchanged", "rejected",
                         "files", "skipped"], rows, title=f"pull (run {run.id})"))
    report_sources(results)
    raise typer.Exit(run.exit_code)


def report_sources(results: list[SourceResult]) -> None:
    """One stderr line per failed source or refused file, a warning for rejected rows, and a
    note of records dropped because their person was erased."""
    for r in results:
        if r.error:
            error(f"source {r.name}: {r.error}")
        for origin, reason in r.file_errors.items():
            error(f"{origin}: {reason}")
        if r.counts.rejected - len(r.file_errors) > 0:
            warning(f"source {r.name}: {r.counts.rejected - len(r.file_errors)} rows rejected "
                    "(see 'segsync status --rejects')")
        if r.counts.suppressed:
            err.print(f"source {r.name}: {r.counts.suppressed} records of erased people dropped "
                      "unstored (see 'segsync forget --list')", markup=False)
