"""The built-in commands of ``segsync``; :func:`register` adds them to the app."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from .cli import _print_json, _state, error, out, pull_progress, table, warning
from .errors import ConfigError, SegsyncError
from .pull import SourceResult, pull_sources
from .runs import recent_runs, recorded
from .store import run_lock

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
StrictOption = typer.Option(
    False, "--strict", help="Exit 1 when any row was rejected, not only when a source failed."
)


def pull_exit_code(results: list[SourceResult], strict: bool) -> int:
    """1 when a source failed or a whole file was refused (an operator must act); rejected rows
    are reported and kept in the store but exit 0 unless ``--strict``: re-running cannot fix
    them, and exports routinely hold rows that are not customer data (anonymous sales)."""
    if any(r.status == "failed" or r.file_errors for r in results):
        return 1
    return 1 if strict and any(r.counts.rejected for r in results) else 0


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(pull)
    app.command()(check)
    app.command()(plugins)
    app.command()(status)
    app.command()(forget)


def init(
    path: Path = typer.Argument(Path("segsync.toml"), help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a starter config file to edit."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    path.write_text(resources.files("segsync.core").joinpath("starter.toml").read_text())
    out.print(f"wrote {path}; edit it, then run 'segsync check' and 'segsync pull'")


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
    state = _state(ctx)
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
        with pull_progress(not as_json) as progress:
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
        _print_json({"run_id": run.id, **run.summary})
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
    """One stderr line per failed source or refused file, and a warning for rejected rows."""
    for r in results:
        if r.error:
            error(f"source {r.name}: {r.error}")
        for origin, reason in r.file_errors.items():
            error(f"{origin}: {reason}")
        if r.counts.rejected - len(r.file_errors) > 0:
            warning(f"source {r.name}: {r.counts.rejected - len(r.file_errors)} rows rejected "
                    "(see 'segsync status --rejects')")


def check(ctx: typer.Context) -> None:
    """Validate the config and each connector's credentials."""
    state = _state(ctx)
    sources, destinations = state.connectors()
    problems = 0
    for kind, items in (("source", sources), ("destination", destinations)):
        for name, connector in items.items():
            try:
                notes = connector.check()
            except SegsyncError as exc:
                problems += 1
                error(f"{kind} {name}: {exc}")
                continue
            out.print(f"ok: {kind} {name} ({connector.type_name})")
            for note in notes:
                out.print(f"    {note}")
    out.print(f"config {state.settings.config_path or '(environment only)'}: "
              f"{len(sources)} sources, {len(destinations)} destinations, "
              f"{len(state.settings.segments)} segments, {len(state.settings.syncs)} syncs")
    raise typer.Exit(1 if problems else 0)


def plugins(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List loaded plugins, their hooks and the connectors they register."""
    info = _state(ctx).plugins.describe()
    if as_json:
        _print_json(info)
        return
    rows = [
        [p["name"], p["origin"], ", ".join(p["hooks"]),
         ", ".join(p["sources"]) or "-", ", ".join(p["destinations"]) or "-"]
        for p in info
    ]
    out.print(table(["plugin", "from", "hooks", "sources", "destinations"], rows))


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
    state = _state(ctx)
    db = state.db
    per_source = {}
    for (name,) in db.execute(
        "SELECT source FROM customers UNION SELECT source FROM orders "
        "UNION SELECT source FROM rejects UNION SELECT source FROM source_runs ORDER BY 1"
    ).fetchall():
        customers, guests = db.execute(
            "SELECT count(*), coalesce(sum(is_guest), 0) FROM customers WHERE source = ?", [name]
        ).fetchone()
        orders, amount = db.execute(
            "SELECT count(*), round(coalesce(sum(total), 0), 2) FROM orders WHERE source = ?",
            [name],
        ).fetchone()
        per_source[name] = {
            "customers": customers,
            "guest_customers": guests,
            "orders": orders,
            "orders_total_amount": amount,
            "order_lines": db.execute(
                "SELECT count(*) FROM order_lines WHERE source = ?", [name]).fetchone()[0],
            "rejected": db.execute(
                "SELECT count(*) FROM rejects WHERE source = ?", [name]).fetchone()[0],
            "files_imported": db.execute(
                "SELECT count(*) FROM source_files WHERE source = ?", [name]).fetchone()[0],
        }
    data = {
        "store": str(state.settings.store.path),
        "people": db.execute("SELECT count(*) FROM people").fetchone()[0],
        "sources": per_source,
        "runs": recent_runs(db, limit),
    }
    if rejects:
        data["rejects"] = [
            dict(zip(("source", "origin", "field", "reason"), row, strict=True))
            for row in db.execute(
                "SELECT source, origin, field, reason FROM rejects ORDER BY source, rowid LIMIT ?",
                [limit],
            )
        ]
    if as_json:
        _print_json(data)
        return
    out.print(f"store {data['store']}: {data['people']:,} people")
    out.print(table(
        ["source", "customers", "orders", "lines", "amount", "rejected", "files"],
        [[k, f"{v['customers']:,}", f"{v['orders']:,}", f"{v['order_lines']:,}",
          f"{v['orders_total_amount']:,.2f}", f"{v['rejected']:,}", v["files_imported"]]
         for k, v in per_source.items()],
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


def forget(
    ctx: typer.Context,
    identifier: str = typer.Argument(..., help="The person's email address or phone number."),
    as_json: bool = JsonOption,
) -> None:
    """Erase a person from the store (right to erasure); the next run removes them from every
    destination. Forget the same identifier again after that run to scrub its log rows."""
    from .forget import forget as erase

    state = _state(ctx)
    with run_lock(state.settings.store.path):
        result = erase(state.db, identifier, state.settings.store.default_region)
    if as_json:
        _print_json(result.as_dict())
        return
    out.print(f"forgot {result.identifier}: {result.people} people, {result.customers} source "
              f"records, {result.orders} orders, {result.rejects} rejected rows; "
              f"{result.log_rows} log rows scrubbed", markup=False)
    if result.pending_removals:
        out.print(f"{result.pending_removals} destination memberships will be removed by the "
                  "next 'segsync run'", markup=False)
