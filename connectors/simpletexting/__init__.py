"""SimpleTexting (API v2) as an SMS destination: segments become SimpleTexting lists."""

from segsync.plugins import hookimpl

from .destination import SimpleTextingDestination


@hookimpl
def register_destinations(register):
    register(SimpleTextingDestination)
