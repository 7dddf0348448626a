"""Stable keys for rows of files that have no order id (CDNOW, many POS "sales" exports).

Such a row's key is a hash of its content plus its occurrence number among identical rows of
the same file: two identical purchases on one day (CDNOW has 215 such duplicated lines) stay
two orders, while the same row in an overlapping second export gets the same key and is
imported once.

Counting occurrences exactly needs to know, for each row, whether an identical row came
before it. Remembering every row would grow with the file, so a first pass puts each row's
hash into a Bloom filter (about 10 bits a row) and collects the hashes it has possibly seen
before. Only rows in that small candidate set are counted in the import pass; every other
row is known to be unique and is occurrence 0. A false positive only adds a unique row to the
candidates, where it is counted as 0 all the same, so the keys are exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_BITS_PER_ROW = 10
_PROBES = 5
_MASK64 = (1 << 64) - 1


class _Bloom:
    def __init__(self, items: int):
        self.size = max(8192, items * _BITS_PER_ROW)
        self.bits = bytearray(self.size // 8 + 1)

    def add(self, value: int) -> bool:
        """Add ``value``; True when it was possibly present already."""
        value &= _MASK64
        # Double hashing: probe i is a + i*b, from the two halves of one 64-bit hash.
        a, b = value & 0xFFFFFFFF, (value >> 32) | 1
        present = True
        for i in range(_PROBES):
            pos = (a + i * b) % self.size
            byte, bit = pos >> 3, 1 << (pos & 7)
            if not self.bits[byte] & bit:
                present = False
                self.bits[byte] |= bit
        return present


class RowKeys:
    """Content keys for the rows of one file, numbered among identical rows."""

    def __init__(self, header: Sequence[str]):
        # Columns in name order, so the same row keys the same in a file whose columns are
        # in another order.
        self._order = sorted(range(len(header)), key=lambda i: header[i])
        self._prefix = "\x1f".join(header[i] for i in self._order) + "\x1d"
        self._candidates: set[int] = set()
        self._counts: dict[str, int] = {}

    def _content(self, row: Sequence[str]) -> tuple[str, ...]:
        return tuple(row[i].strip() if i < len(row) else "" for i in self._order)

    def scan(self, rows: Iterable[Sequence[str]], expected: int) -> None:
        """First pass: find the rows that may occur more than once."""
        bloom = _Bloom(expected)
        for row in rows:
            # Python's own hash is enough here: it only has to agree within this process.
            h = hash(self._content(row))
            if bloom.add(h):
                self._candidates.add(h)

    def key(self, row: Sequence[str]) -> str:
        """The row's key: ``<content hash>-<occurrence>``, counting from 0."""
        content = self._content(row)
        payload = (self._prefix + "\x1f".join(content)).encode()
        digest = hashlib.blake2b(payload, digest_size=10).hexdigest()
        occurrence = 0
        if hash(content) in self._candidates:
            occurrence = self._counts.get(digest, 0)
            self._counts[digest] = occurrence + 1
        return f"{digest}-{occurrence}"
