"""``segsync init``, ``check`` and ``plugins``: setting a store up and seeing what is loaded."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from ..alerts import redact, secret_values
from ..errors import ConfigError, SegsyncError
from .options import JsonOption, app_state
from .output import error, out, print_json, table


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(check)
    app.command()(plugins)


def init(
    path: Path = typer.Argument(Path("segsync.toml"), help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a starter config file to edit.

    \b
    Example:
      segsync init segsync.toml
    """
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    path.write_text(resources.files("segsync.core").joinpath("starter.toml").read_text())
    out.print(f"wrote {path}; edit it, then run 'segsync check' and 'segsync pull'")


def check(ctx: typer.Context) -> None:
    """Validate the config and each connector's credentials.

    \b
    Example:
      segsync check --config segsync.toml
    """
    state = app_state(ctx)
    sources, destinations = state.connectors()
    problems = 0
    for kind, items in (("source", sources), ("destination", destinations)):
        for name, connector in items.items():
            try:
                notes = connector.check()
            except SegsyncError as exc:
                problems += 1
                error(redact(f"{kind} {name}: {exc}", secret_values(state.settings, sources,
                                                                     destinations)))
                continue
            out.print(f"ok: {kind} {name} ({connector.type_name})")
            for note in notes:
                out.print(f"    {note}")
    out.print(f"config {state.settings.config_path or '(environment only)'}: "
              f"{len(sources)} sources, {len(destinations)} destinations, "
              f"{len(state.settings.segments)} segments, {len(state.settings.syncs)} syncs")
    raise typer.Exit(1 if problems else 0)


def plugins(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List loaded plugins and their connectors.

    Each plugin with the hooks it implements and the connectors it registers.

    \b
    Example:
      segsync plugins --json
    """
    info = app_state(ctx).plugins.describe()
    if as_json:
        print_json(info)
        return
    rows = [
        [p["name"], p["origin"], ", ".join(p["hooks"]),
         ", ".join(p["sources"]) or "-", ", ".join(p["destinations"]) or "-"]
        for p in info
    ]
    out.print(table(["plugin", "from", "hooks", "sources", "destinations"], rows))
