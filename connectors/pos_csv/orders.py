"""Orders from rows: one row per order, or one row per line item grouped into its order.

Exports with one row per line item (Shopify's orders export, Square's items export) write an
order's rows one after another; consecutive rows with the same order key become one
:class:`Order` whose lines are the rows. Order-level values are taken from the first row of
the order that has them (Shopify writes them on the first row only). Only the current order's
rows are held in memory.

A refund row (matched by ``refund_when``, or a negative amount) is its own order with a
negative total and a key of its own, so it never overwrites the sale it refunds.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from segsync.core.records import Order, OrderLine, Record, Rejected

from .customers import build_customer
from .fields import LINE_FIELDS, ORDER_CUSTOMER_FIELDS, ORDER_FIELDS
from .rows import Problem, RowValues

#: How many customer keys of one file are remembered to yield each minimal customer once;
#: past that the memory is cleared and a key may be yielded again (the store upserts).
_RECENT_CUSTOMERS = 100_000

#: Values of the order (and of who placed it), as opposed to values of one of its lines.
_ORDER_LEVEL = frozenset(ORDER_FIELDS) | frozenset(ORDER_CUSTOMER_FIELDS)
_LINE_LEVEL = frozenset(LINE_FIELDS)
_CUSTOMER_LEVEL = frozenset(ORDER_CUSTOMER_FIELDS)


@dataclass
class OrderRow:
    """One row of an orders file, read and keyed, waiting for the rest of its order."""

    line: int
    raw: dict[str, str]
    #: The order's key; None for a row without an order id (refused on its own).
    key: str | None
    #: Whether the row is a refund; None when the row cannot tell (a later line-item row
    #: without an amount), and then it belongs with the order before it.
    refund: bool | None
    values: RowValues | None
    problem: Problem | None = None


class OrderAssembler:
    """Groups an orders file's rows into orders and yields the records for each."""

    def __init__(
        self,
        *,
        display: str,
        columns: dict[str, str],
        keyed: bool,
        currency: str | None,
        link_namespace: str | None,
    ):
        self.display = display
        #: canonical field → the file's header name, for reasons that name the column.
        self.columns = columns
        #: Whether keys are order ids (refunds then need a key of their own) or row hashes.
        self.keyed = keyed
        self.currency = currency
        self.link_namespace = link_namespace
        self.rejected = 0
        self._group: list[OrderRow] = []
        self._recent: set[str] = set()

    def add(self, row: OrderRow) -> Iterator[Record]:
        """Take the next row; yields the previous order once a row of another order arrives."""
        if row.key is None:
            assert row.problem is not None
            yield self._reject(row, row.problem)
            return
        current = self._group[0] if self._group else None
        if row.refund is None:
            row.refund = current.refund if current and current.key == row.key else False
        if current and (current.key, current.refund) != (row.key, row.refund):
            yield from self.finish()
        self._group.append(row)

    def finish(self) -> Iterator[Record]:
        """Yield the order being assembled, if any."""
        group, self._group = self._group, []
        if group:
            yield from self._emit(group)

    def _reject(self, row: OrderRow, problem: Problem) -> Rejected:
        self.rejected += 1
        return Rejected("orders", f"{self.display}:{row.line}", problem.reason, line=row.line,
                        field=problem.field, raw=row.raw)

    def _emit(self, group: list[OrderRow]) -> Iterator[Record]:
        bad = next((r for r in group if r.problem is not None), None)
        problem = bad.problem if bad is not None else None
        if problem is None:
            built = self._build(group)
            if isinstance(built, Problem):
                bad, problem = group[0], built
            else:
                yield from built
                return
        assert bad is not None and problem is not None
        for row in group:
            if row is bad:
                yield self._reject(row, problem)
            else:
                # Never import part of an order: its total or its lines would be wrong.
                yield self._reject(row, Problem(problem.field, (
                    f"part of order {group[0].key}, rejected because of line {bad.line}: "
                    f"{problem.reason}")))

    def _column(self, name: str) -> str:
        return f"'{self.columns[name]}'"

    def _blank(self, what: str, names: tuple[str, ...], hint: str = "") -> str:
        cols = [self._column(n) for n in names if n in self.columns]
        if not cols:
            return f"{what}: the file has no column for {' / '.join(names)}{hint}"
        return f"{what}: column{'s' if len(cols) > 1 else ''} {', '.join(cols)} blank{hint}"

    def _build(self, group: list[OrderRow]) -> Problem | list[Record]:
        first = group[0]
        rows = [r.values for r in group if r.values is not None]
        merged: dict[str, Any] = {}
        attributes: dict[str, str] = {}
        order_attributes: dict[str, str] = {}
        if len(rows) == 1:
            # One row per order (the common case): its values are the order's, as they are.
            only = rows[0]
            merged = {k: v for k, v in only.values.items() if k in _ORDER_LEVEL}
            attributes = dict(only.attributes)
            order_attributes = dict(only.order_attributes)
            rows_to_merge: list[RowValues] = []
        else:
            rows_to_merge = rows
        for parsed in rows_to_merge:
            for name, value in parsed.values.items():
                if name in _ORDER_LEVEL and name not in merged:
                    merged[name] = value
            for name, value in parsed.attributes.items():
                attributes.setdefault(name, value)
            for name, value in parsed.order_attributes.items():
                order_attributes.setdefault(name, value)

        ordered_at = merged.get("ordered_at")
        if ordered_at is None:
            return Problem("ordered_at", self._blank("no order date", ("ordered_at",)))
        if (time := merged.get("ordered_time")) is not None:
            ordered_at = dt.datetime.combine(ordered_at.date(), time, ordered_at.tzinfo)

        lines = [line for i, parsed in enumerate(rows, 1) if (line := _line(i, parsed.values))]
        total = merged.get("total")
        if total is None:
            amounts = [line.amount for line in lines if line.amount is not None]
            if not amounts:
                return Problem("total", self._blank("no amount", ("total", "amount", "price")))
            # fsum, then rounding, keeps float noise (0.1 + 0.2) out of the stored total.
            total = round(math.fsum(amounts), 4)
        elif len(lines) == 1 and lines[0].amount is None:
            # One line without its own amount (CDNOW: a quantity and the order's total).
            lines[0].amount = total

        key = first.key
        assert key is not None
        if first.refund:
            total = -abs(total)
            for line in lines:
                if line.amount is not None:
                    line.amount = -abs(line.amount)
            if self.keyed:
                key = f"{key}:refund:{ordered_at:%Y%m%dT%H%M%S}"

        customer_key = merged.get("customer_key")
        email, phone = merged.get("email"), merged.get("phone")
        if not (customer_key or email or phone):
            return Problem("customer_key", self._blank(
                "no customer", ("customer_key", "email", "phone"),
                " (a row needs a customer id, email or phone)"))
        origin = f"{self.display}:{first.line}"
        records: list[Record] = []
        if customer_key and customer_key not in self._recent:
            if len(self._recent) >= _RECENT_CUSTOMERS:
                self._recent.clear()
            self._recent.add(customer_key)
            # Only the customer's own fields: the order's updated_at is not the customer's.
            person = {k: v for k, v in merged.items() if k in _CUSTOMER_LEVEL}
            records.append(build_customer(customer_key, person, attributes,
                                          link_namespace=self.link_namespace, origin=origin,
                                          raw=first.raw))
        records.append(Order(
            key=key,
            ordered_at=ordered_at,
            total=total,
            customer_key=customer_key,
            # A guest order carries who placed it; an order with a customer links to them.
            email=None if customer_key else email,
            phone=None if customer_key else phone,
            name=merged.get("name"),
            currency=merged.get("currency") or self.currency,
            refunded=abs(merged.get("refunded", 0.0)),
            cancelled_at=merged.get("cancelled_at"),
            test=merged.get("test", False),
            financial_status=merged.get("financial_status"),
            location=merged.get("location"),
            channel=merged.get("channel"),
            updated_at=merged.get("updated_at"),
            lines=lines,
            attributes=order_attributes,
            origin=origin,
            raw=first.raw,
        ))
        return records


def _line(index: int, values: dict[str, Any]) -> OrderLine | None:
    """The row's order line, or None when the row has no line values at all."""
    if _LINE_LEVEL.isdisjoint(values):
        return None
    quantity = values.get("quantity", 1.0)
    price = values.get("price")
    amount = values.get("amount")
    if amount is None and price is not None:
        amount = round(price * quantity, 4)
    return OrderLine(
        key=str(index),
        title=values.get("title"),
        sku=values.get("sku"),
        vendor=values.get("vendor"),
        category=values.get("category"),
        product_tags=values.get("product_tags", []),
        quantity=quantity,
        price=price,
        amount=amount,
    )
