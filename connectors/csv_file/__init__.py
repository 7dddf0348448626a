"""CSV files as a destination: each target is a CSV of its members plus a JSONL change log."""

from segsync.plugins import hookimpl

from .destination import CsvFileDestination


@hookimpl
def register_destinations(register):
    register(CsvFileDestination)
