"""What commands share besides output: the invocation's state and the common options."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from segsync.plugins import Plugins

from ..errors import ConfigError
from ..settings import Settings, build_connectors, load_settings
from ..store import open_store

ConfigOption = typer.Option(
    None, "--config", "-c", help="Config file (default ./segsync.toml).", show_default=False
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
AsOfOption = typer.Option(
    None, "--as-of", help="Compute segments as of this day (YYYY-MM-DD) instead of today.",
    formats=["%Y-%m-%d"],
)
SyncOption = typer.Option(None, "--sync", help="Only these syncs (repeatable).")
StrictOption = typer.Option(
    False, "--strict", help="Exit 1 when any row was rejected, not only when a source failed."
)


class AppState:
    """What every command shares: the config path and lazily loaded settings and store."""

    def __init__(self, plugins: Plugins, config: Path | None):
        self.plugins = plugins
        self.config = config

    @functools.cached_property
    def settings(self) -> Settings:
        # required: without ./segsync.toml a command must not quietly open ./segsync.db
        return load_settings(self.config, required=True)

    def connectors(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return build_connectors(self.settings, self.plugins)

    @functools.cached_property
    def db(self):
        return open_store(self.settings.store.path)


def require_known(kind: str, given: list[str] | str | None, known: Iterable[str]) -> None:
    """Refuse, before any work, a name on the command line that the config does not define.

    A typo in ``--sync`` must not cost a pull and a model fit, nor read as "nothing to do".
    """
    names = [given] if isinstance(given, str) else list(given or [])
    valid = sorted(known)
    unknown = [n for n in dict.fromkeys(names) if n not in valid]
    if unknown:
        listed = ", ".join(valid) or "none configured"
        raise ConfigError(f"no {kind} named {', '.join(map(repr, unknown))} ({kind}s: {listed})")


def app_state(ctx: typer.Context) -> AppState:
    """The invocation's :class:`AppState`, from any command's context."""
    return ctx.find_root().obj


def as_date(value: dt.datetime | None) -> dt.date | None:
    """An ``--as-of`` value (typer parses it as a datetime) as the day it names."""
    return value.date() if value else None
