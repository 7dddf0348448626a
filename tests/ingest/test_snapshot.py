"""What a pull stores, byte for byte: a change to ingest must not change a stored value.

The digests are of :mod:`store_snapshot`'s canonical dump (every pull-stage table in key order,
exact value reprs, customers' insertion order) after one pull of the bundled demo data and of
the malformed-export corpus. A deliberate change of what is stored updates them, and says why
in its commit; regenerate with ``python tests/ingest/store_snapshot.py dump CONFIG DIR``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO
from store_snapshot import digest, dump, pull

EXPECTED = {
    "config.example.toml": "896a7eca06b9036581696254b72efa2bf6091e09913752f365ff1110940a45a1",
    "tests/data/corpus.toml":
        "35b32237a133d183cf6e679180125a190037ba1ac90e9ad74b0e0afddd45ed40",
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_a_pull_stores_exactly_what_it_stored_before(config: str, tmp_path: Path):
    db = tmp_path / "store.db"
    pull(REPO / config, db)
    tables = dump(db)
    assert tables["customers"] and tables["orders"]
    assert digest(tables) == EXPECTED[config]
