"""Segments: compile each configured segment and materialise its membership in the store.

A segment is one of three things (:class:`~segsync.core.settings.SegmentSettings`):

* ``query``: a query in the segment language, compiled to SQL over ``person_features pf``;
* ``template`` with ``params``: a named template expanded to a query in the segment language, so
  templates get the same type checking and parameter binding as hand-written queries;
* ``sql``: the escape hatch, a user-written SELECT returning ``person_id``. It runs on a separate
  read-only connection with an authorizer that allows reads only, because a config file must not
  be able to change or exfiltrate the store (no writes, no ATTACH, no PRAGMA settings).

Membership is materialised per run with set-based SQL (one ``INSERT … SELECT`` per segment), in
one transaction, so that the plan stage never sees half of a run's segments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlite_utils import Database

from ..errors import ConfigError, QueryError
from ..measure import BY_NAME, GLOBAL_COLUMNS
from ..settings import SegmentSettings
from ..store import utcnow
from .compiler import Scope, compile_query, moving_dates
from .parser import parse

#: A template: its parameters in, a query in the segment language out.
Template = Callable[[Mapping[str, Any]], str]
#: Where templates are looked up: a mapping of names, or a function returning None when unknown.
TemplateRegistry = Mapping[str, Template] | Callable[[str], Template | None]

#: The columns :func:`preview` shows for each sampled member.
PREVIEW_COLUMNS = ("person_id", "email", "phone", "first_name", "last_name", "amount_spent",
                   "number_of_orders", "last_order_date")

# Rows fetched at a time from a user's SQL segment: bounded memory on large segments.
_BATCH = 10_000

# What the read-only connection may do: read tables, call functions, run (recursive) SELECTs.
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           sqlite3.SQLITE_RECURSIVE})
# PRAGMAs that only report, whatever their argument; every other PRAGMA is denied.
_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                           "index_xinfo", "foreign_key_list", "database_list", "function_list",
                           "collation_list"})


@dataclass(frozen=True)
class CompiledSegment:
    """A segment ready to run.

    ``sql`` selects ``person_id``: for query and template segments ``SELECT pf.person_id FROM
    person_features pf WHERE {where}`` with named ``params``; for SQL segments the user's
    statement (``where`` is None), which must run on a read-only connection.
    ``where`` is the per-person form of the condition (:mod:`.compiler`), for evaluating a few
    people; ``where_all`` the set-wise form with the same members and the same ``params``, for
    evaluating everyone (:func:`_replace_members`, :func:`preview`). ``sql`` and the hash are
    taken from ``where`` alone, so adding the set-wise form changed no stored hash.
    ``definition_hash`` changes when the definition or its compiled SQL does, never with the
    as-of date, so an unchanged definition is recognisable from run to run.
    """

    name: str
    kind: Literal["query", "template", "sql"]
    sql: str
    where: str | None
    params: dict[str, Any]
    definition_hash: str
    #: The query in the segment language (a template expanded); None for SQL segments.
    text: str | None = None
    #: The parameters holding relative dates, with what each is compared with (see
    #: :func:`.compiler.moving_dates`).
    moving: dict[str, tuple[Scope, str]] = field(default_factory=dict)
    #: ``where`` compiled set-wise; None for SQL segments.
    where_all: str | None = None


def compile_segment(
    name: str,
    seg: SegmentSettings,
    as_of: dt.date,
    templates: TemplateRegistry | None = None,
) -> CompiledSegment:
    """Compile one configured segment; :class:`QueryError` / :class:`ConfigError` name it."""
    if seg.sql is not None:
        # sqlite3 runs one statement; a trailing ";" would count as a second, empty one.
        sql = seg.sql.strip().rstrip(";").strip()
        return CompiledSegment(name, "sql", sql, None, {}, _hash({"kind": "sql", "sql": sql}))
    if seg.template is not None:
        kind: Literal["query", "template"] = "template"
        template = _find_template(name, seg.template, templates)
        try:
            text = template(seg.params)
        except ConfigError as exc:
            problems = [f"segment {name!r}: {p}" for p in exc.problems]
            raise ConfigError(problems[0], problems) from None
        definition: dict[str, Any] = {"template": seg.template, "params": seg.params}
    else:
        kind, text, definition = "query", seg.query or "", {}
    try:
        query = parse(text)
        where, params = compile_query(query, as_of)
        where_all, _ = compile_query(query, as_of, setwise=True)  # the same params
        moving = moving_dates(query, as_of)
    except QueryError as exc:
        raise QueryError(f"segment {name!r}: {exc.reason}", exc.query, exc.position) from exc
    sql = f"SELECT pf.person_id FROM person_features pf WHERE {where}"
    # The canonical query ignores layout and keyword case; the SQL text holds no dates (they are
    # parameters), so the hash is as-of independent yet changes when compilation does.
    digest = _hash({"kind": kind, **definition, "query": query.canonical, "sql": sql})
    return CompiledSegment(name, kind, sql, where, params, digest, text, moving, where_all)


def _hash(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _find_template(name: str, template: str, templates: TemplateRegistry | None) -> Template:
    if isinstance(templates, Mapping):
        found = templates.get(template)
    else:
        found = templates(template) if templates is not None else None
    if found is None:
        known = sorted(templates) if isinstance(templates, Mapping) else []
        hint = f" (known: {', '.join(known)})" if known else ""
        raise ConfigError(f"segment {name!r}: unknown template {template!r}{hint}")
    return found


def materialise(
    db: Database,
    segments: Mapping[str, SegmentSettings],
    as_of: dt.date,
    run_id: int | None = None,
    templates: TemplateRegistry | None = None,
    *,
    changed: str | None = None,
) -> dict[str, int]:
    """Bring every segment's members up to date as of ``as_of``; return each segment's size.

    Everything is compiled before anything is written, so a bad definition changes nothing.
    Then, in one transaction, each segment's members are updated and its ``segments`` row
    upserted, and the rows of segments no longer configured are deleted. SQL segments read the
    last committed state of the store (their connection is separate) and are replaced whole.

    ``changed`` names a table of the people whose feature rows were rebuilt since the last
    materialisation (an incremental refresh; None when every row may have changed). A query
    segment whose definition is unchanged and that reads no column the refresh's global pass
    rewrites is then updated for those people alone, plus, when it compares with relative
    dates, the people a moved date reaches (:func:`_reached`); any other is evaluated over
    everyone and only the difference written.
    """
    compiled = [compile_segment(name, seg, as_of, templates) for name, seg in segments.items()]
    computed_at = utcnow()
    sizes: dict[str, int] = {}
    known = {name: (digest, dt.date.fromisoformat(day)) for name, digest, day in db.execute(
        "SELECT name, definition_hash, as_of FROM segments").fetchall()}
    row = db.execute("SELECT value FROM meta WHERE key = ?", [_BINDINGS_KEY]).fetchone()
    bound = json.loads(row[0]) if row else {}
    with db.atomic():
        for seg, settings in zip(compiled, segments.values(), strict=True):
            if seg.where is None:
                db.execute("DELETE FROM segment_members WHERE segment = ?", [seg.name])
                sizes[seg.name] = _insert_sql_members(db, seg)
            elif (changed is not None and seg.name in known
                  and known[seg.name][0] == seg.definition_hash
                  and not GLOBAL_COLUMNS & set(_COLUMN.findall(seg.where))
                  and (before := _previous(seg, settings, known[seg.name][1], templates,
                                           bound.get(seg.name))) is not None):
                sizes[seg.name] = _update_members(db, seg, changed, before)
            else:
                sizes[seg.name] = _replace_members(db, seg)
            db.execute(
                """
                INSERT INTO segments(name, definition_hash, run_id, as_of, size, computed_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET
                    definition_hash = excluded.definition_hash, run_id = excluded.run_id,
                    as_of = excluded.as_of, size = excluded.size,
                    computed_at = excluded.computed_at
                """,
                [seg.name, seg.definition_hash, run_id, as_of.isoformat(), sizes[seg.name],
                 computed_at],
            )
            if run_id is not None:  # a run's sizes are history; a plan's or preview's are not
                db.execute("INSERT OR REPLACE INTO segment_sizes(run_id, segment, as_of, size) "
                           "VALUES (?, ?, ?, ?)", [run_id, seg.name, as_of.isoformat(),
                                                   sizes[seg.name]])
        names = json.dumps(list(sizes))
        db.execute("DELETE FROM segment_members WHERE segment NOT IN "
                   "(SELECT value FROM json_each(?))", [names])
        db.execute("DELETE FROM segments WHERE name NOT IN (SELECT value FROM json_each(?))",
                   [names])
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   [_BINDINGS_KEY, json.dumps({seg.name: _bindings(seg) for seg in compiled})])
    return sizes


#: ``meta`` key of each segment's bound values at its last materialisation.
_BINDINGS_KEY = "segment_bindings"

#: A catalog column read by a compiled condition.
_COLUMN = re.compile(r"\bpf\.(\w+)")


def _bindings(seg: CompiledSegment) -> str:
    """The values bound into a query segment's SQL: relative dates move with the as-of date."""
    return _hash({"where": seg.where, "params": seg.params})


def _previous(seg: CompiledSegment, settings: SegmentSettings, as_of: dt.date,
              templates: TemplateRegistry | None, bindings: str | None) -> dict[str, Any] | None:
    """The parameters ``seg`` was last materialised with, at its stored ``as_of``; None
    unless that evaluation is the one recorded (same SQL, same bound values)."""
    try:
        before = compile_segment(seg.name, settings, as_of, templates)
    except (ConfigError, QueryError):  # a relative date out of range at the old as-of
        return None
    if before.where != seg.where or _bindings(before) != bindings:
        return None
    return before.params


def _reached(db: Database, seg: CompiledSegment, before: dict[str, Any]) -> None:
    """Add to ``temp._seg_people`` everyone a moved relative date of ``seg`` reaches.

    A comparison with a date gives another outcome at the new date than at the old only for
    a compared value between the two (both included): a feature value of the row, or the date
    of one of the person's orders (any order: a superset of those the condition counts).
    """
    for name, (scope, sql) in seg.moving.items():
        if before[name] == seg.params[name]:
            continue
        low, high = sorted((before[name], seg.params[name]))
        values = {**seg.params, "_low": low, "_high": high}
        if scope == "pf":
            db.execute("INSERT OR IGNORE INTO temp._seg_people SELECT pf.person_id "
                       f"FROM person_features pf WHERE {sql} BETWEEN :_low AND :_high", values)
        else:
            db.execute("INSERT OR IGNORE INTO temp._seg_people SELECT o.person_id "
                       f"FROM orders o WHERE o.person_id IS NOT NULL "
                       f"AND {sql} BETWEEN :_low AND :_high", values)


def _update_members(db: Database, seg: CompiledSegment, changed: str,
                    before: dict[str, Any]) -> int:
    """Re-evaluate the segment for the people in ``changed`` and those a moved date reaches
    (``before``: the parameters of the last evaluation)."""
    db.execute("DROP TABLE IF EXISTS temp._seg_people")
    db.execute("CREATE TEMP TABLE _seg_people (person_id INTEGER PRIMARY KEY)")
    try:
        db.execute(f"INSERT INTO temp._seg_people SELECT person_id FROM {changed}")
        _reached(db, seg, before)
        db.execute("DELETE FROM segment_members WHERE segment = ? AND person_id IN "
                   "(SELECT person_id FROM temp._seg_people)", [seg.name])
        # CROSS JOIN: from the few people to their rows, never the condition over everyone.
        db.execute(
            "INSERT INTO segment_members(segment, person_id) SELECT :segment, pf.person_id "
            "FROM temp._seg_people AS c CROSS JOIN person_features pf "
            f"ON pf.person_id = c.person_id WHERE {seg.where}",
            {**seg.params, "segment": seg.name},
        )
    finally:
        db.execute("DROP TABLE temp._seg_people")
    return db.execute("SELECT count(*) FROM segment_members WHERE segment = ?",
                      [seg.name]).fetchone()[0]


def _replace_members(db: Database, seg: CompiledSegment) -> int:
    """Evaluate the segment over everyone (set-wise) and write only the members who came or
    went."""
    db.execute("DROP TABLE IF EXISTS temp._seg_members")
    db.execute("CREATE TEMP TABLE _seg_members (person_id INTEGER PRIMARY KEY)")
    try:
        size = db.execute(
            "INSERT INTO temp._seg_members "
            f"SELECT pf.person_id FROM person_features pf WHERE {seg.where_all}", seg.params,
        ).rowcount
        db.execute("DELETE FROM segment_members WHERE segment = ? AND person_id NOT IN "
                   "(SELECT person_id FROM temp._seg_members)", [seg.name])
        db.execute("INSERT OR IGNORE INTO segment_members(segment, person_id) "
                   "SELECT ?, person_id FROM temp._seg_members", [seg.name])
    finally:
        db.execute("DROP TABLE temp._seg_members")
    return size


def _insert_sql_members(db: Database, seg: CompiledSegment) -> int:
    """Stream a SQL segment's ``person_id`` values from the read-only connection into the store."""
    inserted = 0
    with read_only_connection(db) as ro:
        with _user_sql_errors(seg):
            cursor = ro.execute(seg.sql)
        columns = [d[0] for d in cursor.description or ()]
        if "person_id" not in columns:
            raise ConfigError(f"segment {seg.name!r}: sql must return a person_id column "
                              f"(it returns {', '.join(columns) or 'nothing'})")
        index = columns.index("person_id")
        while True:
            # Only reading the user's query is wrapped: a failure of the store's own insert is
            # a bug, not a configuration problem.
            with _user_sql_errors(seg):
                rows = cursor.fetchmany(_BATCH)
            if not rows:
                return inserted
            inserted += db.conn.executemany(
                "INSERT OR IGNORE INTO segment_members(segment, person_id) VALUES (?, ?)",
                [(seg.name, row[index]) for row in rows if row[index] is not None],
            ).rowcount


@contextlib.contextmanager
def _user_sql_errors(seg: CompiledSegment) -> Iterator[None]:
    """Report a failure of user-written SQL (syntax, refused by the authorizer) as config."""
    try:
        yield
    except sqlite3.Error as exc:
        raise ConfigError(f"segment {seg.name!r}: sql failed: {exc}") from exc


@contextlib.contextmanager
def read_only_connection(db: Database) -> Iterator[sqlite3.Connection]:
    """A second connection to ``db``'s file that can only read, for user-written SQL.

    ``mode=ro`` stops writes to the file, but a read-only connection can still create TEMP
    tables, ATTACH other files or change PRAGMAs, so an authorizer denies everything except
    reading. The store runs in WAL mode, so this reader never blocks the writer.
    """
    path = next((file for _, schema, file in db.conn.execute("PRAGMA database_list")
                 if schema == "main"), "")
    if not path:
        raise ConfigError("sql segments need a store database file, not an in-memory store")
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        conn.set_authorizer(_authorize_read)
        yield conn
    finally:
        conn.close()


def _authorize_read(action: int, arg1: str | None, arg2: str | None, db_name: str | None,
                    _trigger: str | None) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    # SQLite authorises connecting a table-valued function (json_each, pragma_table_info) as an
    # update of the main schema table. A real write to it stays impossible: the file is opened
    # read-only and SQLite refuses to modify sqlite_master without PRAGMA writable_schema,
    # which is denied above.
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db_name == "main":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def explain(
    name: str,
    seg: SegmentSettings,
    as_of: dt.date,
    templates: TemplateRegistry | None = None,
) -> tuple[str, dict[str, Any]]:
    """The full SELECT a segment runs and its parameters, for ``segsync segments explain``."""
    compiled = compile_segment(name, seg, as_of, templates)
    return compiled.sql, compiled.params


def preview(
    db: Database,
    name: str,
    seg: SegmentSettings,
    as_of: dt.date,
    limit: int = 10,
    templates: TemplateRegistry | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """A segment's size and its first ``limit`` members (by person id), without storing anything.

    Lets a marketer check a definition before the first push. SQL segments run on the read-only
    connection, like in :func:`materialise`.
    """
    compiled = compile_segment(name, seg, as_of, templates)
    columns = ", ".join(f"pf.{BY_NAME[c].sql_column} AS {c}" for c in PREVIEW_COLUMNS)
    if compiled.where_all is not None:
        params = {**compiled.params, "limit": limit}
        size = db.execute(f"SELECT count(*) FROM person_features pf WHERE {compiled.where_all}",
                          params).fetchone()[0]
        rows = db.execute(f"SELECT {columns} FROM person_features pf WHERE {compiled.where_all} "
                          "ORDER BY pf.person_id LIMIT :limit", params).fetchall()
    else:
        # The newline before ")" keeps a trailing "-- comment" in the user's SQL from eating it.
        members = f"SELECT person_id FROM (\n{compiled.sql}\n) WHERE person_id IS NOT NULL"
        with read_only_connection(db) as ro, _user_sql_errors(compiled):
            size = ro.execute(f"SELECT count(DISTINCT person_id) FROM ({members})").fetchone()[0]
            rows = ro.execute(f"SELECT {columns} FROM person_features pf WHERE pf.person_id IN "
                              f"({members}) ORDER BY pf.person_id LIMIT ?", (limit,)).fetchall()
    return size, [dict(zip(PREVIEW_COLUMNS, row, strict=True)) for row in rows]


def stored_segments(db: Database, segments: Mapping[str, SegmentSettings]) -> list[dict[str, Any]]:
    """Each configured segment with its kind and its size at the last run (``None`` before
    one), in config order."""
    stored = {
        row[0]: row[1:] for row in db.execute("SELECT name, size, as_of, run_id FROM segments")
    }
    rows = []
    for name, seg in segments.items():
        size, as_of, run_id = stored.get(name, (None, None, None))
        kind = "sql" if seg.sql else "template" if seg.template else "query"
        rows.append({"name": name, "kind": kind, "description": seg.description,
                     "size": size, "as_of": as_of, "run_id": run_id})
    return rows
