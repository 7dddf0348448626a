"""What the store holds per source: the numbers ``segsync status`` and the report show.

In: ``customers``, ``orders``, ``order_lines``, ``rejects``, ``source_files``, ``source_runs``,
``people``. Out: plain dicts; nothing is written.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database


def source_stats(db: Database) -> dict[str, dict[str, Any]]:
    """Per source (by name): customers, guests, orders and their amount, lines, rejected rows
    and imported files."""
    per_source: dict[str, dict[str, Any]] = {}
    for (name,) in db.execute(
        "SELECT source FROM customers UNION SELECT source FROM orders "
        "UNION SELECT source FROM rejects UNION SELECT source FROM source_runs ORDER BY 1"
    ).fetchall():
        customers, guests = db.execute(
            "SELECT count(*), coalesce(sum(is_guest), 0) FROM customers WHERE source = ?", [name]
        ).fetchone()
        orders, amount = db.execute(
            "SELECT count(*), round(coalesce(sum(total), 0), 2) FROM orders WHERE source = ?",
            [name],
        ).fetchone()
        per_source[name] = {
            "customers": customers,
            "guest_customers": guests,
            "orders": orders,
            "orders_total_amount": amount,
            "order_lines": db.execute(
                "SELECT count(*) FROM order_lines WHERE source = ?", [name]).fetchone()[0],
            "rejected": db.execute(
                "SELECT count(*) FROM rejects WHERE source = ?", [name]).fetchone()[0],
            "files_imported": db.execute(
                "SELECT count(*) FROM source_files WHERE source = ?", [name]).fetchone()[0],
        }
    return per_source


def people_count(db: Database) -> int:
    return db.execute("SELECT count(*) FROM people").fetchone()[0]


def rejected_rows(db: Database, limit: int, source: str | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` rejected rows (of one ``source``, or all), by source then import
    order."""
    where, params = ("WHERE source = ? ", [source]) if source else ("", [])
    return [
        dict(zip(("source", "origin", "field", "reason"), row, strict=True))
        for row in db.execute(
            f"SELECT source, origin, field, reason FROM rejects {where}"
            "ORDER BY source, rowid LIMIT ?",
            [*params, limit],
        )
    ]
