"""Who is who: merging source records that share an identifier into people.

In: ``customers`` and ``orders`` with normalised identifiers (the writer's work). Out:
``people`` (one profile per person, consent merged so an opt-out never becomes an opt-in),
``person_id`` on every customer record and order, ``identity_links`` and ``person_merges``.

Records sharing a normalised email or phone are one person. Resolution is set-based SQL label
propagation (each record takes the smallest label among records sharing an identifier, until
nothing changes), so it needs no per-record Python and scales with the store. Person ids are
stable: a component keeps the oldest (smallest) id among its records, merged-away ids are kept
in ``person_merges``, and a component with no id yet gets a new one.
"""

from __future__ import annotations

from sqlite_utils import Database

from ..records import OPT_OUT_STATES
from ..store import utcnow

#: The customer columns whose equal values make two records one person.
LINK_COLUMNS = ("email", "phone", "link_id")


def resolve(db: Database, run_id: int | None = None) -> dict[str, int]:
    """Link every customer record and order to a person and rebuild the people profiles.

    Returns counts: ``people``, ``new`` people, ``merged`` ids, ``iterations`` of propagation.
    """
    with db.atomic():
        iterations = _label_components(db)
        counts = _assign_person_ids(db, run_id)
        db.execute(
            """
            UPDATE orders SET person_id = (
                SELECT c.person_id FROM customers c
                WHERE c.source = orders.source AND c.key = orders.customer_key)
            WHERE person_id IS NOT (
                SELECT c.person_id FROM customers c
                WHERE c.source = orders.source AND c.key = orders.customer_key)
            """
        )
        _rebuild_profiles(db, run_id)
        _rebuild_links(db)
        db.execute("DROP TABLE temp.resolve_labels")
    counts["iterations"] = iterations
    counts["people"] = db.execute("SELECT count(*) FROM people").fetchone()[0]
    return counts


def _rebuild_links(db: Database) -> None:
    """Index every usable identifier by the person holding it (``identity_links``), so "who is
    ann@example.com?" is one lookup for support, erasure and log queries."""
    db.execute("DELETE FROM identity_links")
    for column in LINK_COLUMNS:
        db.execute(
            f"INSERT OR REPLACE INTO identity_links(kind, value, person_id) "
            f"SELECT ?, {column}, min(person_id) FROM customers "
            f"WHERE {column} IS NOT NULL GROUP BY {column}",
            [column],
        )


def _label_components(db: Database) -> int:
    db.execute(
        """
        CREATE TEMP TABLE resolve_labels AS
        SELECT rowid AS rid, email, phone, link_id, rowid AS label FROM customers
        """
    )
    db.execute("CREATE INDEX temp.resolve_labels_link ON resolve_labels(link_id)")
    db.execute("CREATE INDEX temp.resolve_labels_email ON resolve_labels(email)")
    db.execute("CREATE INDEX temp.resolve_labels_phone ON resolve_labels(phone)")
    db.execute("CREATE UNIQUE INDEX temp.resolve_labels_rid ON resolve_labels(rid)")
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
        FROM resolve_labels l JOIN customers c ON c.rowid = l.rid
        GROUP BY l.label
        """
    )
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
        FROM customers c
        JOIN resolve_labels l ON l.rid = c.rowid
        JOIN resolve_ids i ON i.label = l.label
        WHERE c.person_id IS NOT NULL AND c.person_id != i.person_id
          AND c.person_id NOT IN (SELECT person_id FROM resolve_ids)
        """,
        [run_id, now],
    ).rowcount
    db.execute(
        """
        UPDATE customers SET person_id = (
            SELECT i.person_id FROM resolve_labels l JOIN resolve_ids i ON i.label = l.label
            WHERE l.rid = customers.rowid)
        """
    )
    db.execute("DROP TABLE temp.resolve_components")
    db.execute("DROP TABLE temp.resolve_ids")
    return {"new": new, "merged": merged}


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


def _rebuild_profiles(db: Database, run_id: int | None) -> None:
    profile_columns = ["email", "phone", "first_name", "last_name", "city", "region", "country",
                       "postal_code", "birth_date", "gender"]
    selects = ",\n".join(f"{_latest(col)} AS {col}" for col in profile_columns)
    db.execute("DROP TABLE IF EXISTS temp.resolve_profiles")
    db.execute(
        f"""
        CREATE TEMP TABLE resolve_profiles AS
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
        FROM (SELECT DISTINCT person_id FROM customers) p
        """
    )
    db.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM resolve_profiles)")
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
