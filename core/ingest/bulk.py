"""Settings for the duration of one bulk step: a bigger page cache, no cyclic GC passes.

A staged file and identity resolution read and write whole tables with index lookups at
random; SQLite's default 2 MB cache turns that into re-reads of the same pages (a 500k-row
resolution took 22 s, 12 s with 256 MB; :data:`_MEGABYTES` says what it gets now). Loading a
staged file allocates millions of small objects that live to its end (per-column memos,
batches): the cyclic collector's passes over them made a 500k-row load take 15 s instead of
8.6 s, and the step creates no cycles to collect. Both are restored after the step. A push
(:mod:`segsync.core.sync.push`) pauses the collector too: its pauses stall the workers.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from sqlite_utils import Database

#: Megabytes of page cache per schema during a bulk step, chosen so that a run at 1M people
#: stays inside DESIGN §5's 500 MB peak (256 MB for each took it to 672 MB). The store's
#: tables and indexes get most; the temp schema only holds a step's scratch tables.
_MEGABYTES = {"main": 160, "temp": 32}


@contextmanager
def page_cache(db: Database) -> Iterator[None]:
    """A bigger cache for the main and the temp database (:data:`_MEGABYTES`)."""
    before = [db.execute(f"PRAGMA {schema}.cache_size").fetchone()[0] for schema in _MEGABYTES]
    for schema, megabytes in _MEGABYTES.items():
        db.execute(f"PRAGMA {schema}.cache_size = {-1024 * megabytes}")
    try:
        yield
    finally:
        for schema, size in zip(_MEGABYTES, before, strict=True):
            db.execute(f"PRAGMA {schema}.cache_size = {int(size)}")


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection until the block ends (reference counting still frees)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
