"""POS and shop CSV exports as a source (Square, Shopify exports, any mapped CSV)."""

from segsync.plugins import hookimpl


@hookimpl
def register_sources(register):
    pass
