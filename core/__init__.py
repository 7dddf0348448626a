"""segsync's engine and its public API for plugin authors.

Plugin authors import from here (and ``hookimpl`` from :mod:`segsync.plugins`)::

    from segsync.core import Source, Destination, Customer, Order

The engine follows the pipeline. One package per stage, each importing only from earlier
stages and from the shared modules here (``tests/test_layers.py`` holds that line):

* :mod:`.ingest` — pull sources into the store, normalise identifiers, resolve people;
* :mod:`.measure` — features, scores and predictions per person, as of a day;
* :mod:`.segment` — the query language and each segment's materialised membership;
* :mod:`.sync` — plan, push, reconcile and forget, under the safety rules of DESIGN §4;
* :mod:`.runner` strings the stages together; :mod:`.cli` is the typer layer over it all.

Shared by every stage: :mod:`.settings`, :mod:`.store` and :mod:`.migrations`,
:mod:`.errors`, :mod:`.runs`, and the connector kit (:mod:`.connector`, :mod:`.records`,
:mod:`.http`, :mod:`.retry`, :mod:`.jobs`, :mod:`.files`, :mod:`.testing`).
"""

from importlib.metadata import PackageNotFoundError, version

from . import _moved
from .connector import (
    Capabilities,
    Change,
    ConnectorConfig,
    Destination,
    Outcome,
    PullState,
    Source,
    Target,
)
from .errors import (
    ConfigError,
    ConnectorError,
    FatalError,
    PluginError,
    RetriableError,
    SegsyncError,
    SourceError,
)
from .records import Cursor, Customer, FileSeen, Order, OrderLine, Rejected

_moved.install()

try:
    __version__ = version("segsync")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Capabilities",
    "Change",
    "ConfigError",
    "ConnectorConfig",
    "ConnectorError",
    "Cursor",
    "Customer",
    "Destination",
    "FatalError",
    "FileSeen",
    "Order",
    "OrderLine",
    "Outcome",
    "PluginError",
    "PullState",
    "Rejected",
    "RetriableError",
    "SegsyncError",
    "Source",
    "SourceError",
    "Target",
    "__version__",
]
