"""Who is who: merging source records that share an identifier into people.

In: ``customers`` and ``orders`` with normalised identifiers (the writer's work). Out:
``people`` (one profile per person, consent merged so an opt-out never becomes an opt-in),
``person_id`` on every customer record and order, ``identity_links`` and ``person_merges``.

Records sharing a normalised email or phone are one person. Resolution is set-based SQL label
propagation (each record takes the smallest label among records sharing an identifier, until
nothing changes), so it needs no per-record Python and scales with the store. Person ids are
stable: a component keeps the oldest (smallest) id among its records, merged-away ids are kept
in ``person_merges``, and a component with no id yet gets a new one.

Incremental by default: only the components a change can reach are re-labelled. After any
resolution every pair of records sharing an identifier already has one person, so a change
reaches exactly the people who held the changed records before (``pending_changes``, written
by triggers) and the people holding any identifier the new or changed records now carry; their
records, and nobody else's, are labelled again. Labels are record rowids and ids are assigned
by the same rules over those complete components, so the result is the one a full resolution
gives. Every person whose records, orders or id changed goes to ``dirty_people`` for the
measure stage; a full resolution instead flags the next measure as full.
"""

from __future__ import annotations

from sqlite_utils import Database

from ..records import OPT_OUT_STATES
from ..store import utcnow
from .bulk import page_cache

#: The customer columns whose equal values make two records one person.
LINK_COLUMNS = ("email", "phone", "link_id")

#: ``meta`` key set when the people changed in ways ``dirty_people`` does not list.
MEASURE_FULL_KEY = "measure_full"

_TEMP = ("resolve_changed", "resolve_seeds", "resolve_labels", "resolve_orders", "resolve_dirty",
         "resolve_values", "resolve_single", "resolve_profiles")


def resolve(db: Database, run_id: int | None = None, *, full: bool = False) -> dict[str, int]:
    """Link customer records and orders to people and update the people profiles.

    ``full`` re-labels every record (as ``--full-refresh`` does); otherwise only the components
    that changed since the last resolution. Returns counts: ``people``, ``new`` people,
    ``merged`` ids, ``relabelled`` records and ``iterations`` of propagation.
    """
    with page_cache(db), db.atomic():
        try:
            relabelled = _scope(db, full)
            iterations = _label_components(db)
            counts = _assign_person_ids(db, run_id)
            _relink_orders(db, full)
            _rebuild_profiles(db, run_id, full)
            _rebuild_links(db, full)
            if full:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, '1')",
                           [MEASURE_FULL_KEY])
            else:
                db.execute("INSERT OR IGNORE INTO dirty_people SELECT person_id "
                           "FROM temp.resolve_dirty WHERE person_id IS NOT NULL")
            db.execute("DELETE FROM pending_changes")
        finally:
            for name in _TEMP:
                db.execute(f"DROP TABLE IF EXISTS temp.{name}")
    counts["iterations"] = iterations
    counts["relabelled"] = relabelled
    counts["people"] = db.execute("SELECT count(*) FROM people").fetchone()[0]
    return counts


def _scope(db: Database, full: bool) -> int:
    """Fill ``resolve_labels`` with the records to label (all, or the reachable components)
    and ``resolve_dirty`` with the people they held; return the number of records."""
    db.execute("CREATE TEMP TABLE resolve_dirty (person_id INTEGER PRIMARY KEY)")
    db.execute("CREATE TEMP TABLE resolve_labels (rid INTEGER PRIMARY KEY, email TEXT, "
               "phone TEXT, link_id TEXT, label INTEGER)")
    if full:
        db.execute("INSERT INTO temp.resolve_labels "
                   "SELECT rowid, email, phone, link_id, rowid FROM customers")
    else:
        # Records new since the last resolution (no person yet) or changed since.
        db.execute(
            """
            CREATE TEMP TABLE resolve_changed AS
            SELECT rowid AS rid, email, phone, link_id FROM customers WHERE person_id IS NULL
            UNION
            SELECT c.rowid, c.email, c.phone, c.link_id FROM pending_changes AS p
            JOIN customers AS c ON c.source = p.source AND c.key = p.key
            WHERE p.stream = 'customers'
            """
        )
        db.execute("CREATE TEMP TABLE resolve_seeds (person_id INTEGER PRIMARY KEY)")
        db.execute("INSERT OR IGNORE INTO temp.resolve_seeds SELECT person_id "
                   "FROM pending_changes WHERE stream = 'customers'")
        for column in LINK_COLUMNS:
            db.execute(
                f"INSERT OR IGNORE INTO temp.resolve_seeds SELECT c.person_id "
                f"FROM temp.resolve_changed AS ch JOIN customers AS c ON c.{column} = ch.{column} "
                f"WHERE ch.{column} IS NOT NULL AND c.person_id IS NOT NULL"
            )
        db.execute(
            """
            INSERT OR IGNORE INTO temp.resolve_labels
            SELECT c.rowid, c.email, c.phone, c.link_id, c.rowid FROM temp.resolve_seeds AS s
            CROSS JOIN customers AS c ON c.person_id = s.person_id
            """
        )
        db.execute("INSERT OR IGNORE INTO temp.resolve_labels "
                   "SELECT rid, email, phone, link_id, rid FROM temp.resolve_changed")
        db.execute("INSERT OR IGNORE INTO temp.resolve_dirty SELECT person_id "
                   "FROM temp.resolve_seeds")
    db.execute("CREATE INDEX temp.resolve_labels_link ON resolve_labels(link_id)")
    db.execute("CREATE INDEX temp.resolve_labels_email ON resolve_labels(email)")
    db.execute("CREATE INDEX temp.resolve_labels_phone ON resolve_labels(phone)")
    return db.execute("SELECT count(*) FROM temp.resolve_labels").fetchone()[0]


def _rebuild_links(db: Database, full: bool) -> None:
    """Index every usable identifier by the person holding it (``identity_links``), so "who is
    ann@example.com?" is one lookup for support, erasure and log queries.

    Incrementally, only the values the re-labelled records hold or the changed records held."""
    if full:
        db.execute("DELETE FROM identity_links")
        for column in LINK_COLUMNS:
            db.execute(
                f"INSERT OR REPLACE INTO identity_links(kind, value, person_id) "
                f"SELECT ?, {column}, min(person_id) FROM customers "
                f"WHERE {column} IS NOT NULL GROUP BY {column}",
                [column],
            )
        return
    db.execute("CREATE TEMP TABLE resolve_values (kind TEXT, value TEXT, "
               "PRIMARY KEY (kind, value))")
    for column in LINK_COLUMNS:
        db.execute(f"INSERT OR IGNORE INTO temp.resolve_values SELECT ?, {column} "
                   f"FROM temp.resolve_labels WHERE {column} IS NOT NULL", [column])
        db.execute(f"INSERT OR IGNORE INTO temp.resolve_values SELECT ?, {column} "
                   f"FROM pending_changes WHERE stream = 'customers' AND {column} IS NOT NULL",
                   [column])
    db.execute("DELETE FROM identity_links WHERE (kind, value) IN "
               "(SELECT kind, value FROM temp.resolve_values)")
    for column in LINK_COLUMNS:
        db.execute(
            f"INSERT OR REPLACE INTO identity_links(kind, value, person_id) "
            f"SELECT ?, c.{column}, min(c.person_id) FROM temp.resolve_values AS v "
            f"JOIN customers AS c ON c.{column} = v.value "
            f"WHERE v.kind = ? GROUP BY c.{column}",
            [column, column],
        )


def _label_components(db: Database) -> int:
    iterations = 0
    while True:
        iterations += 1
        # Each pass lowers a record's label to the smallest label of any record sharing an
        # identifier; a chain of n links settles in at most n passes (usually two).
        lowest = {
            col: f"(SELECT min(o.label) FROM resolve_labels o WHERE o.{col} = resolve_labels.{col})"
            for col in LINK_COLUMNS
        }
        candidates = ", ".join(f"coalesce({sub}, label)" for sub in lowest.values())
        stale = " OR ".join(f"({col} IS NOT NULL AND label > {sub})" for col, sub in lowest.items())
        changed = db.execute(
            f"UPDATE resolve_labels SET label = min(label, {candidates}) WHERE {stale}"
        ).rowcount
        if changed == 0:
            return iterations


def _assign_person_ids(db: Database, run_id: int | None) -> dict[str, int]:
    now = utcnow()
    db.execute(
        """
        CREATE TEMP TABLE resolve_components AS
        SELECT l.label, min(c.person_id) AS old_id
        FROM resolve_labels l CROSS JOIN customers c ON c.rowid = l.rid
        GROUP BY l.label
        """
    )
    # Without it the claim check below scans every component for each one: quadratic.
    db.execute("CREATE INDEX temp.resolve_components_old ON resolve_components(old_id, label)")
    # Two components can claim the same old id when a record's identifier changed and split a
    # person: the component with the smallest label keeps it, the other gets a new id.
    db.execute(
        """
        UPDATE resolve_components SET old_id = NULL
        WHERE old_id IS NOT NULL AND label > (
            SELECT min(o.label) FROM resolve_components o
            WHERE o.old_id = resolve_components.old_id)
        """
    )
    base = db.execute("SELECT coalesce(max(id), 0) FROM people").fetchone()[0]
    base = max(base, db.execute("SELECT coalesce(max(old_id), 0) FROM person_merges").fetchone()[0])
    db.execute(
        """
        CREATE TEMP TABLE resolve_ids AS
        SELECT label, coalesce(old_id, ? + row_number() OVER (
            PARTITION BY old_id IS NULL ORDER BY label)) AS person_id,
            old_id IS NULL AS is_new
        FROM resolve_components
        """,
        [base],
    )
    db.execute("CREATE UNIQUE INDEX temp.resolve_ids_label ON resolve_ids(label)")
    new = db.execute("SELECT count(*) FROM resolve_ids WHERE is_new").fetchone()[0]
    # Ids that lose every record are merged into the id their records now carry.
    merged = db.execute(
        """
        INSERT OR REPLACE INTO person_merges(old_id, new_id, run_id, merged_at)
        SELECT DISTINCT c.person_id, i.person_id, ?, ?
        FROM resolve_labels l
        CROSS JOIN customers c ON c.rowid = l.rid
        JOIN resolve_ids i ON i.label = l.label
        WHERE c.person_id IS NOT NULL AND c.person_id != i.person_id
          AND c.person_id NOT IN (SELECT person_id FROM resolve_ids)
        """,
        [run_id, now],
    ).rowcount
    db.execute("INSERT OR IGNORE INTO temp.resolve_dirty SELECT person_id FROM resolve_ids")
    # The labelled records are reached by rowid; UPDATE … FROM would scan every record.
    label_person = ("(SELECT i.person_id FROM resolve_labels l JOIN resolve_ids i "
                    "ON i.label = l.label WHERE l.rid = customers.rowid)")
    db.execute(
        f"""
        UPDATE customers SET person_id = {label_person}
        WHERE rowid IN (SELECT rid FROM resolve_labels) AND person_id IS NOT {label_person}
        """
    )
    db.execute("DROP TABLE temp.resolve_components")
    db.execute("DROP TABLE temp.resolve_ids")
    return {"new": new, "merged": merged}


_ORDER_PERSON = """(SELECT c.person_id FROM customers c
    WHERE c.source = orders.source AND c.key = orders.customer_key)"""


def _relink_orders(db: Database, full: bool) -> None:
    """Give each order its customer record's person; the people an order left or joined are
    dirty. Incrementally only the orders of re-labelled, changed or removed records, changed
    orders and orders without a person are looked at."""
    if full:
        db.execute(f"UPDATE orders SET person_id = {_ORDER_PERSON} "
                   f"WHERE person_id IS NOT {_ORDER_PERSON}")
        return
    db.execute(
        """
        CREATE TEMP TABLE resolve_orders AS
        SELECT o.rowid AS oid FROM temp.resolve_labels AS l
        CROSS JOIN customers AS c ON c.rowid = l.rid
        CROSS JOIN orders AS o ON o.source = c.source AND o.customer_key = c.key
        UNION
        SELECT o.rowid FROM pending_changes AS p
        JOIN orders AS o ON o.source = p.source AND o.customer_key = p.key
        WHERE p.stream = 'customers'
        UNION
        SELECT o.rowid FROM pending_changes AS p
        JOIN orders AS o ON o.source = p.source AND o.key = p.key
        WHERE p.stream = 'orders'
        UNION
        SELECT rowid FROM orders WHERE person_id IS NULL
        """
    )
    pick = "SELECT o.person_id FROM temp.resolve_orders AS r JOIN orders AS o ON o.rowid = r.oid"
    db.execute(f"INSERT OR IGNORE INTO temp.resolve_dirty {pick}")
    db.execute("INSERT OR IGNORE INTO temp.resolve_dirty SELECT person_id FROM pending_changes "
               "WHERE stream = 'orders'")
    db.execute(f"UPDATE orders SET person_id = {_ORDER_PERSON} "
               f"WHERE rowid IN (SELECT oid FROM temp.resolve_orders) "
               f"AND person_id IS NOT {_ORDER_PERSON}")
    db.execute(f"INSERT OR IGNORE INTO temp.resolve_dirty {pick}")


_OPT_OUT_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(OPT_OUT_STATES)) + ")"


def _consent_rank(channel: str) -> str:
    """SQL ordering that puts the winning consent record of a person first.

    1. an opt-out without a timestamp: nothing can prove it was superseded;
    2. otherwise the most recent timestamped state, an opt-out first on a tie;
    3. then untimestamped states: subscribed, pending, not_subscribed.
    """
    state, at = f"{channel}_consent", f"{channel}_consent_at"
    return f"""
        CASE WHEN {state} IN {_OPT_OUT_SQL} AND {at} IS NULL THEN 0
             WHEN {at} IS NOT NULL THEN 1 ELSE 2 END,
        {at} DESC,
        {state} IN {_OPT_OUT_SQL} DESC,
        CASE {state} WHEN 'subscribed' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END
    """


def _latest(column: str) -> str:
    """Subquery: the column's value from the person's most recently updated record having one."""
    return f"""(SELECT c.{column} FROM customers c
               WHERE c.person_id = p.person_id AND c.{column} IS NOT NULL
               ORDER BY c.updated_at DESC, c.changed_run DESC, c.source, c.key LIMIT 1)"""


def _consent(channel: str, part: str) -> str:
    return f"""(SELECT c.{channel}_consent{part} FROM customers c
               WHERE c.person_id = p.person_id AND c.{channel}_consent IS NOT NULL
               ORDER BY {_consent_rank(channel)} LIMIT 1)"""


def _rebuild_profiles(db: Database, run_id: int | None, full: bool) -> None:
    """Recompute the profile of every person (``full``) or of the dirty ones, and drop the
    people left without records."""
    profile_columns = ["email", "phone", "first_name", "last_name", "city", "region", "country",
                       "postal_code", "birth_date", "gender"]
    selects = ",\n".join(f"{_latest(col)} AS {col}" for col in profile_columns)
    people = ("SELECT DISTINCT person_id FROM customers" if full else
              "SELECT d.person_id FROM temp.resolve_dirty AS d WHERE EXISTS "
              "(SELECT 1 FROM customers AS c WHERE c.person_id = d.person_id)")
    # Incrementally the few dirty people lead, their records found by index: without stats
    # SQLite would rather scan every customer record.
    join = "JOIN" if full else "CROSS JOIN"
    db.execute("DROP TABLE IF EXISTS temp.resolve_profiles")
    db.execute("DROP TABLE IF EXISTS temp.resolve_single")
    # Most people of an orders export are one record with no tags or attributes: their
    # profile is that record (the rules below, each over one row), read without a subquery
    # per column.
    db.execute(
        f"""
        CREATE TEMP TABLE resolve_single AS
        SELECT c.rowid AS rid, c.person_id FROM ({people}) p
        {join} customers c ON c.person_id = p.person_id
        WHERE c.tags = '[]' AND c.attributes = '{{}}' AND NOT EXISTS (
            SELECT 1 FROM customers o WHERE o.person_id = c.person_id AND o.rowid != c.rowid)
        """
    )
    single_columns = ",\n".join(f"c.{col}" for col in profile_columns)
    db.execute(
        f"""
        CREATE TEMP TABLE resolve_profiles AS
        SELECT c.person_id,
            {single_columns},
            '[]' AS tags, '{{}}' AS attributes, json_array(c.source) AS sources,
            c.email_consent,
            CASE WHEN c.email_consent IS NOT NULL THEN c.email_consent_at END
                AS email_consent_at,
            c.sms_consent,
            CASE WHEN c.sms_consent IS NOT NULL THEN c.sms_consent_at END AS sms_consent_at,
            coalesce(c.created_at, (SELECT min(o.ordered_at) FROM orders o
                     WHERE o.source = c.source AND o.customer_key = c.key)) AS created_at
        FROM temp.resolve_single s JOIN customers c ON c.rowid = s.rid
        """
    )
    db.execute(
        f"""
        INSERT INTO temp.resolve_profiles
        SELECT p.person_id,
            {selects},
            (SELECT json_group_array(t) FROM (
                SELECT DISTINCT j.value AS t FROM customers c, json_each(c.tags) j
                WHERE c.person_id = p.person_id ORDER BY t)) AS tags,
            (SELECT json_group_object(k, v) FROM (
                SELECT j.key AS k, j.value AS v, row_number() OVER (
                    PARTITION BY j.key
                    ORDER BY c.updated_at DESC, c.changed_run DESC, c.source, c.key) AS newest
                FROM customers c, json_each(c.attributes) j
                WHERE c.person_id = p.person_id ORDER BY k) WHERE newest = 1) AS attributes,
            (SELECT json_group_array(s) FROM (
                SELECT DISTINCT c.source AS s FROM customers c
                WHERE c.person_id = p.person_id ORDER BY s)) AS sources,
            {_consent("email", "")} AS email_consent,
            {_consent("email", "_at")} AS email_consent_at,
            {_consent("sms", "")} AS sms_consent,
            {_consent("sms", "_at")} AS sms_consent_at,
            (SELECT min(coalesce(c.created_at, (SELECT min(o.ordered_at) FROM orders o
                     WHERE o.source = c.source AND o.customer_key = c.key)))
             FROM customers c WHERE c.person_id = p.person_id) AS created_at
        FROM ({people}) p
        WHERE p.person_id NOT IN (SELECT person_id FROM temp.resolve_single)
        """
    )
    db.execute("DROP TABLE temp.resolve_single")
    if full:
        db.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM resolve_profiles)")
    else:
        db.execute("DELETE FROM people WHERE id IN (SELECT person_id FROM temp.resolve_dirty) "
                   "AND id NOT IN (SELECT person_id FROM resolve_profiles)")
    db.execute(
        """
        INSERT INTO people (id, email, phone, first_name, last_name, city, region, country,
            postal_code, birth_date, gender, tags, attributes, sources, email_consent,
            email_consent_at, sms_consent, sms_consent_at, created_at, created_run, updated_run)
        SELECT person_id, email, phone, first_name, last_name, city, region, country,
            postal_code, birth_date, gender, tags, coalesce(attributes, '{}'), sources,
            email_consent, email_consent_at, sms_consent, sms_consent_at, created_at, ?, ?
        FROM resolve_profiles WHERE true
        ON CONFLICT(id) DO UPDATE SET
            email = excluded.email, phone = excluded.phone, first_name = excluded.first_name,
            last_name = excluded.last_name, city = excluded.city, region = excluded.region,
            country = excluded.country, postal_code = excluded.postal_code,
            birth_date = excluded.birth_date, gender = excluded.gender, tags = excluded.tags,
            attributes = excluded.attributes, sources = excluded.sources,
            email_consent = excluded.email_consent, email_consent_at = excluded.email_consent_at,
            sms_consent = excluded.sms_consent, sms_consent_at = excluded.sms_consent_at,
            created_at = excluded.created_at, updated_run = excluded.updated_run
        WHERE (people.email, people.phone, people.first_name, people.last_name, people.city,
               people.region, people.country, people.postal_code, people.birth_date,
               people.gender, people.tags, people.attributes, people.sources,
               people.email_consent, people.email_consent_at, people.sms_consent,
               people.sms_consent_at, people.created_at)
          IS NOT (excluded.email, excluded.phone, excluded.first_name, excluded.last_name,
               excluded.city, excluded.region, excluded.country, excluded.postal_code,
               excluded.birth_date, excluded.gender, excluded.tags, excluded.attributes,
               excluded.sources, excluded.email_consent, excluded.email_consent_at,
               excluded.sms_consent, excluded.sms_consent_at, excluded.created_at)
        """,
        [run_id, run_id],
    )
    db.execute("DROP TABLE temp.resolve_profiles")
