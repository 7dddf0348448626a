"""segsync's engine and its public API for plugin authors.

Plugin authors import from here (and ``hookimpl`` from :mod:`segsync.plugins`)::

    from segsync.core import Source, Destination, Customer, Order
"""

from importlib.metadata import PackageNotFoundError, version

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
