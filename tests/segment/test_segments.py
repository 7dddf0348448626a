"""Segments: compiling configured segments, materialising membership, explain and preview."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from segsync.core.errors import ConfigError, QueryError
from segsync.core.measure.attributes import ATTRIBUTES
from segsync.core.segment.membership import (
    PREVIEW_COLUMNS,
    compile_segment,
    explain,
    materialise,
    preview,
    read_only_connection,
)
from segsync.core.settings import SegmentSettings
from segsync.core.store import open_store

AS_OF = dt.date(2024, 3, 31)
_SQL_TYPES = {"integer": "INTEGER", "float": "REAL", "boolean": "INTEGER"}


def create_person_features(db: Database, rows: list[dict[str, Any]]) -> None:
    """A ``person_features`` table with the catalog's columns (the features stage owns the real
    one), filled with ``rows``."""
    db.execute("DROP TABLE IF EXISTS person_features")
    columns = ", ".join(f"{a.sql_column} {_SQL_TYPES.get(a.type, 'TEXT')}"
                        for a in ATTRIBUTES if a.name != "person_id")
    db.execute(f"CREATE TABLE person_features (person_id INTEGER PRIMARY KEY, {columns}, "
               "attributes TEXT NOT NULL DEFAULT '{}')")
    db["person_features"].insert_all(rows)


def _people(spent: Mapping[int, float]) -> list[dict[str, Any]]:
    return [{"person_id": pid, "email": f"p{pid}@example.com", "first_name": f"P{pid}",
             "amount_spent": amount, "number_of_orders": 1, "last_order_date": "2024-03-01",
             "customer_tags": '["vip"]' if pid % 2 else "[]"}
            for pid, amount in spent.items()]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    store = open_store(tmp_path / "store.db")
    create_person_features(store, _people({1: 10.0, 2: 150.0, 3: 300.0, 4: 0.0}))
    return store


def _members(db: Database) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for segment, pid in db.execute("SELECT segment, person_id FROM segment_members"):
        found.setdefault(segment, set()).add(pid)
    return found


def q(query: str) -> SegmentSettings:
    return SegmentSettings(query=query)


# -- compile_segment -------------------------------------------------------------------------


def test_a_query_segment_compiles_to_a_select_over_person_features() -> None:
    seg = compile_segment("big", q("amount_spent > 100 AND last_order_date > -30d"), AS_OF)
    assert seg.kind == "query"
    assert seg.sql == f"SELECT pf.person_id FROM person_features pf WHERE {seg.where}"
    assert seg.params == {"p1": 100.0, "p2": "2024-03-01"}


def test_the_definition_hash_ignores_as_of_and_layout_but_not_meaning() -> None:
    def digest(query: str, as_of: dt.date = AS_OF) -> str:
        return compile_segment("s", q(query), as_of).definition_hash

    base = digest("amount_spent > 100 AND last_order_date > -30d")
    assert digest("amount_spent > 100 AND last_order_date > -30d", dt.date(2030, 1, 1)) == base
    assert digest("amount_spent>100\n  and last_order_date > -30d") == base
    assert digest("amount_spent > 101 AND last_order_date > -30d") != base
    assert digest("amount_spent > 100 AND last_order_date > -31d") != base
    assert len(base) == 64


def test_query_errors_name_the_segment_and_keep_the_caret() -> None:
    with pytest.raises(QueryError) as err:
        compile_segment("vip", q("amount_spend > 1"), AS_OF)
    assert err.value.reason == ("segment 'vip': unknown attribute 'amount_spend'; "
                                "did you mean 'amount_spent'?")
    assert err.value.position == 0
    assert str(err.value).endswith("\n  amount_spend > 1\n  ^")


def _big_spenders(params: Mapping[str, Any]) -> str:
    return f"amount_spent >= {float(params['min_spent'])}"


@pytest.mark.parametrize("registry", [
    {"big_spenders": _big_spenders},
    lambda name: _big_spenders if name == "big_spenders" else None,
], ids=["mapping", "callable"])
def test_templates_expand_to_queries(db: Database, registry: Any) -> None:
    seg = SegmentSettings(template="big_spenders", params={"min_spent": 150})
    compiled = compile_segment("big", seg, AS_OF, registry)
    assert compiled.kind == "template"
    assert materialise(db, {"big": seg}, AS_OF, templates=registry) == {"big": 2}
    other = SegmentSettings(template="big_spenders", params={"min_spent": 300})
    assert compile_segment("big", other, AS_OF, registry).definition_hash != (
        compiled.definition_hash)


@pytest.mark.parametrize(("registry", "message"), [
    (None, "segment 'x': unknown template 'lapsed'"),
    ({"big_spenders": _big_spenders},
     "segment 'x': unknown template 'lapsed' (known: big_spenders)"),
    (lambda name: None, "segment 'x': unknown template 'lapsed'"),
])
def test_an_unknown_template_is_a_config_error(registry: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        compile_segment("x", SegmentSettings(template="lapsed"), AS_OF, registry)
    assert str(err.value) == message


# -- materialise -----------------------------------------------------------------------------


def test_materialise_writes_members_and_segment_rows(db: Database) -> None:
    segments = {"big": q("amount_spent > 100"), "vip": q("customer_tags CONTAINS 'VIP'"),
                "nobody": q("amount_spent < 0")}
    sizes = materialise(db, segments, AS_OF, run_id=7)
    assert sizes == {"big": 2, "vip": 2, "nobody": 0}
    assert _members(db) == {"big": {2, 3}, "vip": {1, 3}}
    rows = {r["name"]: r for r in db["segments"].rows}
    assert set(rows) == {"big", "vip", "nobody"}
    assert rows["big"]["definition_hash"] == compile_segment(
        "big", segments["big"], AS_OF).definition_hash
    assert (rows["big"]["run_id"], rows["big"]["as_of"], rows["big"]["size"]) == (
        7, "2024-03-31", 2)
    assert rows["big"]["computed_at"].endswith("Z")


def test_materialise_replaces_membership_and_drops_removed_segments(db: Database) -> None:
    materialise(db, {"big": q("amount_spent > 100"), "old": q("amount_spent = 0")}, AS_OF,
                run_id=1)
    assert _members(db) == {"big": {2, 3}, "old": {4}}
    # The features change (person 2 spends less, person 5 appears) and "old" is unconfigured.
    create_person_features(db, _people({1: 500.0, 2: 50.0, 3: 300.0, 5: 101.0}))
    sizes = materialise(db, {"big": q("amount_spent > 100")}, dt.date(2024, 4, 1), run_id=2)
    assert sizes == {"big": 3}
    assert _members(db) == {"big": {1, 3, 5}}
    assert [(r["name"], r["run_id"], r["as_of"]) for r in db["segments"].rows] == [
        ("big", 2, "2024-04-01")]


def test_a_bad_definition_changes_nothing(db: Database) -> None:
    materialise(db, {"big": q("amount_spent > 100")}, AS_OF)
    with pytest.raises(QueryError):
        materialise(db, {"big": q("amount_spent > 0"), "bad": q("amount_spent >")}, AS_OF)
    assert _members(db) == {"big": {2, 3}}


def test_a_failing_sql_segment_rolls_back_the_whole_run(db: Database) -> None:
    materialise(db, {"big": q("amount_spent > 100")}, AS_OF)
    # "big" is rewritten first, then the SQL segment fails inside the same transaction.
    with pytest.raises(ConfigError):
        materialise(db, {"big": q("amount_spent > 0"),
                         "bad": SegmentSettings(sql="SELECT nope FROM person_features")}, AS_OF)
    assert _members(db) == {"big": {2, 3}}
    assert [r["name"] for r in db["segments"].rows] == ["big"]


def test_materialise_with_no_segments_clears_everything(db: Database) -> None:
    materialise(db, {"big": q("amount_spent > 100")}, AS_OF)
    assert materialise(db, {}, AS_OF) == {}
    assert _members(db) == {}
    assert db["segments"].count == 0


# -- the SQL escape hatch --------------------------------------------------------------------


def test_a_sql_segment_runs_read_only_and_is_materialised(db: Database) -> None:
    sql = SegmentSettings(sql="""
        SELECT pf.person_id, pf.email FROM person_features pf, json_each(pf.customer_tags) t
        WHERE t.value = 'vip' UNION ALL SELECT NULL, NULL UNION ALL SELECT 1, 'again';
    """)
    assert materialise(db, {"sql_vip": sql}, AS_OF) == {"sql_vip": 2}
    assert _members(db) == {"sql_vip": {1, 3}}
    compiled = compile_segment("sql_vip", sql, AS_OF)
    assert (compiled.kind, compiled.where, compiled.params) == ("sql", None, {})
    assert not compiled.sql.endswith(";")


@pytest.mark.parametrize("statement", [
    "INSERT INTO segments(name, definition_hash, as_of, size, computed_at) "
    "VALUES ('x', 'h', 'd', 0, 'now')",
    "UPDATE person_features SET amount_spent = 0",
    "DELETE FROM person_features",
    "DROP TABLE person_features",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA user_version = 5",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "CREATE TEMP TABLE stash AS SELECT * FROM person_features",
    "REPLACE INTO person_features(person_id) VALUES (9)",
    "WITH x AS (SELECT 1) DELETE FROM person_features",
])
def test_the_sql_escape_hatch_refuses_writes(db: Database, statement: str) -> None:
    before = db.execute("SELECT count(*), sum(amount_spent) FROM person_features").fetchone()
    with pytest.raises(ConfigError) as err:
        materialise(db, {"evil": SegmentSettings(sql=statement)}, AS_OF)
    assert str(err.value).startswith("segment 'evil': sql failed: ")
    assert "not authorized" in str(err.value)
    assert db.execute("SELECT count(*), sum(amount_spent) FROM person_features").fetchone() == (
        before)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db["segments"].count == 0


def test_the_sql_escape_hatch_refuses_a_second_statement(db: Database) -> None:
    with pytest.raises(ConfigError, match="one statement at a time"):
        materialise(db, {"evil": SegmentSettings(
            sql="SELECT person_id FROM person_features; DROP TABLE person_features")}, AS_OF)
    assert db["person_features"].count == 4


def test_the_read_only_connection_cannot_write_even_without_the_authorizer(db: Database) -> None:
    with read_only_connection(db) as ro:
        ro.set_authorizer(None)
        with pytest.raises(Exception, match="readonly"):
            ro.execute("DELETE FROM person_features")
    assert db["person_features"].count == 4


def test_a_sql_segment_must_return_person_id(db: Database) -> None:
    with pytest.raises(ConfigError) as err:
        materialise(db, {"s": SegmentSettings(sql="SELECT email FROM person_features")}, AS_OF)
    assert str(err.value) == "segment 's': sql must return a person_id column (it returns email)"


def test_sql_segments_need_a_database_file() -> None:
    memory = open_store(":memory:")
    create_person_features(memory, _people({1: 1.0}))
    with pytest.raises(ConfigError, match="need a store database file"):
        materialise(memory, {"s": SegmentSettings(sql="SELECT person_id FROM person_features")},
                    AS_OF)


# -- explain and preview ---------------------------------------------------------------------


def test_explain_returns_the_full_select_and_its_parameters(db: Database) -> None:
    sql, params = explain("big", q("amount_spent > 100 OR customer_tags CONTAINS 'vip'"), AS_OF)
    assert sql.startswith("SELECT pf.person_id FROM person_features pf WHERE ")
    assert "'vip'" not in sql
    assert {pid for (pid,) in db.execute(sql, params)} == {1, 2, 3}


def test_preview_gives_the_size_and_a_sample_without_storing(db: Database) -> None:
    size, rows = preview(db, "big", q("amount_spent > 5"), AS_OF, limit=2)
    assert size == 3
    assert [r["person_id"] for r in rows] == [1, 2]
    assert list(rows[0]) == list(PREVIEW_COLUMNS)
    assert rows[0]["email"] == "p1@example.com"
    assert rows[0]["amount_spent"] == 10.0
    assert db["segment_members"].count == 0


def test_preview_runs_a_sql_segment_read_only(db: Database) -> None:
    seg = SegmentSettings(sql="SELECT person_id FROM person_features WHERE amount_spent > 100 "
                              "-- big spenders")
    assert preview(db, "s", seg, AS_OF) == (2, [
        dict(zip(PREVIEW_COLUMNS, row, strict=True)) for row in db.execute(
            "SELECT person_id, email, phone, first_name, last_name, amount_spent, "
            "number_of_orders, last_order_date FROM person_features WHERE person_id IN (2, 3) "
            "ORDER BY person_id")])
    with pytest.raises(ConfigError, match="not authorized|syntax error"):
        preview(db, "s", SegmentSettings(sql="DELETE FROM person_features"), AS_OF)
    assert db["person_features"].count == 4
