"""Plugin loading: built-in connectors, installed packages and local plugin files.

Every invocation builds a fresh :class:`Plugins`: built-ins from :data:`DEFAULT_PLUGINS`, then
packages that declare the ``segsync`` entry-point group, then every ``*.py`` file in the
configured ``plugin_dirs``. ``SEGSYNC_LOAD_PLUGINS=name1,name2`` restricts the last two to the
named plugins (an empty value loads none of them); built-ins always load.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from segsync.core.connector import Destination, Source
from segsync.core.errors import PluginError

from . import hookspecs
from .hookspecs import hookimpl

__all__ = ["DEFAULT_PLUGINS", "Plugins", "hookimpl", "load_plugins", "extra_plugins"]

#: Built-in plugins, by module; each registers its connectors through the public hooks.
DEFAULT_PLUGINS = (
    "segsync.connectors.pos_csv",
    "segsync.connectors.csv_file",
    "segsync.connectors.shopify",
    "segsync.connectors.mailchimp",
    "segsync.connectors.klaviyo",
    "segsync.connectors.simpletexting",
)

ENTRY_POINT_GROUP = "segsync"
LOAD_ENV = "SEGSYNC_LOAD_PLUGINS"

# Plugin objects added by embedding code and tests with ``extra_plugins()``; they load like
# third-party plugins on every later ``load_plugins()`` call.
_extra: list[tuple[str, Any]] = []


@contextlib.contextmanager
def extra_plugins(*plugins: Any) -> Iterator[None]:
    """Make ``plugins`` load on every ``load_plugins()`` inside the block.

    Each plugin is a module or an object with ``@hookimpl`` methods; its name is its
    ``__name__`` attribute (or its class name).
    """
    added = [(getattr(p, "__name__", type(p).__name__), p) for p in plugins]
    _extra.extend(added)
    try:
        yield
    finally:
        for item in added:
            _extra.remove(item)


@dataclass
class Registered:
    """A connector class and the plugin that registered it."""

    cls: type
    plugin: str


@dataclass
class Plugins:
    """A loaded plugin manager plus the connector registry its hooks produced."""

    pm: pluggy.PluginManager
    sources: dict[str, Registered] = field(default_factory=dict)
    destinations: dict[str, Registered] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def source_class(self, type_name: str) -> type[Source] | None:
        reg = self.sources.get(type_name)
        return reg.cls if reg else None

    def destination_class(self, type_name: str) -> type[Destination] | None:
        reg = self.destinations.get(type_name)
        return reg.cls if reg else None

    def describe(self) -> list[dict[str, Any]]:
        """One entry per loaded plugin: name, where it came from, hooks, connectors."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            callers = self.pm.get_hookcallers(plugin) or []
            out.append(
                {
                    "name": name,
                    "origin": self.origins.get(name, "unknown"),
                    "hooks": sorted(c.name for c in callers),
                    "sources": sorted(k for k, r in self.sources.items() if r.plugin == name),
                    "destinations": sorted(
                        k for k, r in self.destinations.items() if r.plugin == name
                    ),
                }
            )
        return out


def _allowed() -> set[str] | None:
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _load_file(path: Path) -> Any:
    module_name = f"segsync_local_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PluginError(f"{path}: failed to load: {exc}") from exc
    return module


def load_plugins(plugin_dirs: Iterable[Path] = ()) -> Plugins:
    """Build a plugin manager with every plugin this invocation should see, and its registry."""
    pm = pluggy.PluginManager("segsync")
    pm.add_hookspecs(hookspecs)
    origins: dict[str, str] = {}
    allowed = _allowed()

    def register(name: str, plugin: Any, origin: str) -> None:
        if pm.has_plugin(name) or pm.is_registered(plugin):
            raise PluginError(f"plugin {name!r} ({origin}) is already loaded")
        pm.register(plugin, name=name)
        origins[name] = origin

    for module_name in DEFAULT_PLUGINS:
        register(module_name.rsplit(".", 1)[-1], importlib.import_module(module_name), "built-in")

    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        dist = ep.dist.name if ep.dist else ep.value
        register(ep.name, plugin, f"package {dist}")

    for folder in plugin_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise PluginError(f"plugin folder does not exist: {folder}")
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or (allowed is not None and path.stem not in allowed):
                continue
            register(path.stem, _load_file(path), f"file {path}")

    for name, plugin in _extra:
        register(name, plugin, "registered in process")

    _check_hook_names(pm)

    plugins = Plugins(pm=pm, origins=origins)
    _collect(pm, "register_sources", Source, plugins.sources)
    _collect(pm, "register_destinations", Destination, plugins.destinations)
    return plugins


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """Fail on an implementation whose name matches no hookspec (what pluggy's
    ``check_pending`` checks), naming the plugin, the hook and the closest real hook."""
    known = sorted(n for n in dir(hookspecs) if n.startswith("register_"))
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (hooks: {', '.join(known)})"
            raise PluginError(
                f"plugin {impl.plugin_name!r} implements {name!r}, which is not a segsync "
                f"hook{hint}"
            )


def _collect(pm: pluggy.PluginManager, hook: str, base: type, into: dict[str, Registered]) -> None:
    # Each implementation is called on its own so the registry knows which plugin registered
    # which connector; pluggy's own call would merge them anonymously.
    for impl in getattr(pm.hook, hook).get_hookimpls():

        def register(cls: type, _plugin: str = impl.plugin_name) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(
                    f"plugin {_plugin!r} registered {cls!r}, which is not a {base.__name__}"
                )
            name = getattr(cls, "type_name", None)
            if not name:
                raise PluginError(f"plugin {_plugin!r}: {cls.__name__} has no type_name")
            if name in into:
                raise PluginError(
                    f"{base.__name__.lower()} {name!r} is registered by both "
                    f"{into[name].plugin!r} and {_plugin!r}"
                )
            into[name] = Registered(cls, _plugin)

        args = {"register": register}
        impl.function(*[args[a] for a in impl.argnames])
