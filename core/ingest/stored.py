"""The stored text of values and the hash of a stored record, shared by both write paths.

The record path (:mod:`.writer`) and the staged path (:mod:`.staged`) must store the same
bytes and compute the same ``record_hash``, so both take them from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring
from typing import Any

# One encoder for every call: ``json.dumps`` with options builds a new encoder each time, and
# this one is called several times per record. Same options, so the same text.
encode = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False).encode


def stored_json(value: Any) -> str:
    if not value and type(value) in (dict, list):
        # Most records' attributes and tags are empty.
        return "{}" if type(value) is dict else "[]"
    return encode(value)


def record_hash(row: dict[str, Any]) -> str:
    return text_hash(encode(row))


def _value(value: Any) -> str:
    """One value as :data:`encode` writes it (the C encoder's reprs; NaN and infinities as
    Python's json writes them); anything but None, str, int or float goes to ``encode``."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return encode_basestring(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    return encode(value)


def object_writer(names: Sequence[str]) -> Callable[[Sequence[Any]], str]:
    """A writer of ``encode(dict(zip(names, values)))`` for a fixed set of names: the keys
    sorted once, not per row (the staged path hashes every order with it)."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    parts = [(encode_basestring(names[i]) + ": ", i) for i in order]

    def write(values: Sequence[Any]) -> str:
        return "{" + ", ".join([prefix + _value(values[i]) for prefix, i in parts]) + "}"

    return write


def text_hash(text: str) -> str:
    """:func:`record_hash` of a record already written as text."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]
