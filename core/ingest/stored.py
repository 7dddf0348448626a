"""The stored text of values and the hash of a stored record, shared by both write paths.

The record path (:mod:`.writer`) and the staged path (:mod:`.staged`) must store the same
bytes and compute the same ``record_hash``, so both take them from here.
"""

from __future__ import annotations

import hashlib
import json
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
    return hashlib.sha256(encode(row).encode()).hexdigest()[:32]
