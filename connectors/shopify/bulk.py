"""Shopify bulk operations: start or adopt one, wait for it, and read its JSONL file.

A bulk query runs on Shopify's side and leaves one JSONL file: a line per node of the top
connection, and a line per node of each nested connection carrying ``__parentId``. Children
come after their parent but not necessarily right after it, so the file is streamed into a
throwaway SQLite table and joined back to parents once it has been read whole: memory stays
flat however large the shop, and nothing assumes contiguity.

Operations outlive the process that started them. The caller persists each operation's id
(see :mod:`segsync.connectors.shopify.source`) and a rerun picks it up with :meth:`Bulk.fetch`;
an operation whose start was answered but whose answer was lost is found again through
``currentBulkOperation`` because its query text is the one about to be sent.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segsync.core.errors import SourceError

from . import queries
from .client import ShopifyClient

log = logging.getLogger("segsync.shopify")

ACTIVE = frozenset({"CREATED", "RUNNING"})
_BATCH = 2000


@dataclass
class BulkJob:
    """What segsync needs to know of one bulk operation."""

    id: str
    status: str
    url: str | None = None
    error_code: str | None = None
    query: str | None = None

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> BulkJob:
        return cls(node["id"], node["status"], node.get("url"), node.get("errorCode"),
                   node.get("query"))


def _same_query(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()) == " ".join(b.split())


class Bulk:
    """Runs bulk queries for one client, polling at ``poll_interval`` up to ``timeout``."""

    def __init__(
        self,
        client: ShopifyClient,
        *,
        poll_interval: float,
        timeout: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.client = client
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep

    def fetch(self, job_id: str) -> BulkJob | None:
        """The operation with this id, or None when Shopify no longer knows it."""
        node = self.client.query(queries.BULK_BY_ID, {"id": job_id}).get("node")
        return BulkJob.from_node(node) if node and node.get("id") else None

    def current(self) -> BulkJob | None:
        node = self.client.query(queries.BULK_CURRENT).get("currentBulkOperation")
        return BulkJob.from_node(node) if node else None

    def start(self, query: str) -> BulkJob:
        """Start ``query``, or adopt the identical operation already running.

        Shopify runs one bulk query per app and shop at a time (before 2026-01). When one is
        running: if it is this very query (a start whose answer was lost, then retried) it is
        adopted, even if it has completed meanwhile (the query's window names this pull's start,
        so an identical query is this pull's own); otherwise segsync waits for it to end and
        starts its own.
        """
        document = queries.bulk_run(self.client.config.api_version)
        for _attempt in range(3):
            payload = self.client.query(document, {"query": query})["bulkOperationRunQuery"]
            if not payload["userErrors"]:
                return BulkJob(payload["bulkOperation"]["id"], payload["bulkOperation"]["status"],
                               query=query)
            running = self.current()
            if running is not None and _same_query(running.query, query) and (
                    running.status in ACTIVE or running.status == "COMPLETED"):
                log.info("adopting bulk operation %s, which runs this very query", running.id)
                return running
            if running is None or running.status not in ACTIVE:
                continue  # it ended between the refusal and the look: try again
            log.info("waiting for bulk operation %s to finish before starting ours", running.id)
            self.wait(running)
        messages = "; ".join(e["message"] for e in payload["userErrors"])
        raise SourceError(f"Shopify refused to start a bulk query: {messages}")

    def wait(self, job: BulkJob) -> BulkJob:
        """Poll until the operation leaves CREATED/RUNNING; SourceError after ``timeout``.

        Giving up loses nothing: the operation keeps running and the next pull resumes it.
        """
        deadline = self.clock() + self.timeout
        while job.status in ACTIVE:
            if self.clock() >= deadline:
                raise SourceError(f"bulk operation {job.id} still {job.status.lower()} after "
                                  f"{self.timeout:.0f}s; the next pull picks it up again")
            self.sleep(self.poll_interval)
            found = self.fetch(job.id)
            if found is None:
                raise SourceError(f"bulk operation {job.id} disappeared while running")
            job = found
        return job

    def nodes(self, url: str | None, children: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The file's top-level nodes, each with its children gathered into lists.

        ``children`` maps a child's GID type to the field it is gathered under
        (``{"LineItem": "lineItems"}``); children of other types are dropped. No URL means the
        operation matched nothing.
        """
        if url is None:
            return
        with tempfile.TemporaryDirectory(prefix="segsync-bulk-") as folder:
            db = sqlite3.connect(Path(folder) / "bulk.sqlite")
            try:
                # A scratch file: losing it in a crash costs one download, so skip durability.
                db.execute("PRAGMA journal_mode=OFF")
                db.execute("PRAGMA synchronous=OFF")
                # A download that breaks off is restarted whole, into a fresh table.
                self.client.retry.call(self._load, db, url)
                yield from self._joined(db, children)
            finally:
                db.close()

    def _load(self, db: sqlite3.Connection, url: str) -> None:
        db.execute("DROP TABLE IF EXISTS lines")
        db.execute("CREATE TABLE lines (seq INTEGER PRIMARY KEY, id TEXT, parent TEXT, "
                   "kind TEXT, data TEXT NOT NULL)")
        batch: list[tuple[str | None, str | None, str | None, str]] = []
        with self.client.lines(url) as lines:
            for line in lines:
                if not line.strip():
                    continue
                # Lines are kept as text; only the keys of the join are read out now.
                node = json.loads(line)
                gid = node.get("id")
                # The GID's type ("LineItem") says which list of the parent a child joins.
                kind = gid.split("/")[3] if isinstance(gid, str) and gid.count("/") >= 4 \
                    else None
                batch.append((gid, node.get("__parentId"), kind, line))
                if len(batch) >= _BATCH:
                    db.executemany("INSERT INTO lines(id, parent, kind, data) VALUES "
                                   "(?, ?, ?, ?)", batch)
                    batch.clear()
        if batch:
            db.executemany("INSERT INTO lines(id, parent, kind, data) VALUES (?, ?, ?, ?)",
                           batch)
        # Indexed after loading: building it once is cheaper than maintaining it per insert.
        db.execute("CREATE INDEX lines_parent ON lines(parent, seq) WHERE parent IS NOT NULL")
        db.commit()

    def _joined(self, db: sqlite3.Connection,
                children: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        # Walking parents in file order and probing the (parent, seq) index returns each
        # parent's children right behind it, already sorted, without a sort step.
        rows = db.execute(
            """SELECT p.seq, p.data, c.kind, c.data FROM lines p
               LEFT JOIN lines c ON c.parent = p.id
               WHERE p.parent IS NULL ORDER BY p.seq, c.seq"""
        )
        current_seq: int | None = None
        node: dict[str, Any] = {}
        for seq, data, kind, child in rows:
            if seq != current_seq:
                if current_seq is not None:
                    yield node
                current_seq = seq
                node = json.loads(data)
                for name in children.values():
                    node[name] = []
            if child is not None and kind in children:
                item = json.loads(child)
                item.pop("__parentId", None)
                node[children[kind]].append(item)
        if current_seq is not None:
            yield node
