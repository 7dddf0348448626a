"""Opening the SQLite store: owner-only file, WAL, migrations, and the one-run-at-a-time lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from .errors import ConfigError, LockedError
from .migrations import migrations


def open_store(path: Path | str) -> Database:
    """Open (creating if needed) the store at ``path`` and bring its schema up to date.

    The file is created 0600 before SQLite touches it, because customer emails and phones are
    personal data and SQLite would otherwise create it with the process umask. WAL keeps readers
    (``segsync status`` during a run) from blocking the writer.
    """
    if str(path) == ":memory:":
        db = Database(memory=True, execute_plugins=False)
    else:
        path = Path(path)
        if not path.parent.exists():
            raise ConfigError(f"store folder does not exist: {path.parent}")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = Database(path, execute_plugins=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=10000")
    migrations.apply(db)
    return db


def utcnow() -> str:
    """The current time as the store writes it: ISO-8601 UTC with a trailing Z."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def run_lock(db_path: Path | str) -> Iterator[None]:
    """Hold the store's run lock, or raise :class:`LockedError` at once.

    An advisory ``flock`` on a side file rather than a row in the database: the kernel drops it
    when the process dies, so a crashed run never leaves a stale lock behind.
    """
    if str(db_path) == ":memory:":
        yield
        return
    lock_path = Path(f"{db_path}.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another segsync run holds the lock on {db_path}; try again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
