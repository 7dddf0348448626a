"""POS and shop CSV exports as a source (Square, Shopify exports, any mapped CSV)."""

from segsync.plugins import hookimpl

from .source import PosCsvSource


@hookimpl
def register_sources(register):
    """Built in, but registered through the same hook a third-party source uses."""
    register(PosCsvSource)
