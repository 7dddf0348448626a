"""The hooks a segsync plugin may implement.

Mark implementations with :data:`segsync.plugins.hookimpl`. An implementation may accept any
subset of a hook's arguments (pluggy prunes the rest). A plugin whose function is named like a
hook but matches none of these fails loading with an error naming it, so a typo never passes
silently.

Built-in connectors are registered through these same hooks (``segsync.connectors.*``).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("segsync")
hookimpl = pluggy.HookimplMarker("segsync")


@hookspec
def register_sources(register):
    """Contribute source connectors.

    :param register: call ``register(SourceClass)`` once per
        :class:`segsync.core.connector.Source` subclass. Its ``type_name`` is what a
        ``[sources.NAME]`` table names in ``type`` (or in its own name). Two plugins
        registering the same ``type_name`` is an error naming both.
    """


@hookspec
def register_destinations(register):
    """Contribute destination connectors.

    :param register: call ``register(DestinationClass)`` once per
        :class:`segsync.core.connector.Destination` subclass, as for sources.
    """


@hookspec
def register_commands(app):
    """Add commands to the ``segsync`` command line.

    :param app: the root :class:`typer.Typer`; add commands with ``@app.command()`` or groups
        with ``app.add_typer(...)``. A fresh app is built for every invocation, so a command
        sees the plugins loaded for that invocation.
    """
