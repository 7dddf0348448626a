"""Old import paths of modules that moved into the stage packages, kept for one release.

Until 0.2 the engine was one flat package (``segsync.core.plan``, ``segsync.core.features``…).
Code that still imports an old path gets the module from its new home, under both names, and a
:class:`DeprecationWarning` naming the new path. The finder sits at the end of
``sys.meta_path``, so it is asked only about names no real module has; remove it in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module name (under ``segsync.core.``) → its new home.
MOVED = {
    "attributes": "measure.attributes",
    "btyd": "measure.btyd",
    "features": "measure.features",
    "predict": "measure.predict",
    "scores": "measure.scores",
    "query_parser": "segment.parser",
    "query_compiler": "segment.compiler",
    "templates": "segment.templates",
    "segments": "segment.membership",
    "plan": "sync.plan",
    "push": "sync.push",
    "reconcile": "sync.reconcile",
    "forget": "sync.forget",
    "pull": "ingest.pull",
    "identity": "ingest.resolve",
    "commands": "cli.setup",
    "sync_commands": "cli.run",
    "segment_commands": "cli.segments",
}
_PREFIX = "segsync.core."


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec):
        return importlib.import_module(self.new_name)

    def exec_module(self, module) -> None:
        """Nothing to run: the module was imported, under its new name, by create_module."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves ``segsync.core.<old>`` to its new module, with a deprecation warning."""

    def find_spec(self, fullname, path=None, target=None):
        old = fullname.removeprefix(_PREFIX)
        if not fullname.startswith(_PREFIX) or old not in MOVED:
            return None
        new_name = _PREFIX + MOVED[old]
        warnings.warn(f"{fullname} moved to {new_name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _MovedLoader(new_name))


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
