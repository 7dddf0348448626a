"""CSV/JSONL files as a destination."""

from segsync.plugins import hookimpl


@hookimpl
def register_destinations(register):
    pass
