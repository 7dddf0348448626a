"""The store's schema, as sqlite-utils migrations applied whenever the database is opened.

Tables by pipeline stage:

* pull: ``source_files``, ``source_cursors``, ``raw_records``, ``customers``, ``orders``,
  ``order_lines``, ``rejects`` — one row per source record, keyed by the source's own key, so a
  re-pull upserts in place.
* erasure: ``suppressions`` (keyed digests of erased identifiers, checked at ingest) and the
  salt behind them in ``meta``.
* resolve: ``people``, ``identity_links`` (each normalised email, phone and link id → the person
  holding it), ``person_merges`` (ids merged away → the surviving id); ``customers`` carries each
  record's ``person_id``.
* measure and segment: ``person_features`` is derived data, rebuilt by the features stage;
  ``segments`` and ``segment_members`` hold the materialised membership, ``segment_sizes``
  each run's size of every segment.
* plan, push and record: ``sync_targets`` (the target a sync's baseline belongs to),
  ``sync_state`` (the acknowledged baseline), ``sync_outcomes`` (per key, the last attempt not
  confirmed: ``pending`` while in flight, ``failed`` or ``rejected``), ``sync_journal`` (every
  batch, written before it is sent), ``sync_log`` (row-level history), ``runs`` and
  ``source_runs``. See :mod:`segsync.core.sync.plan` and :mod:`segsync.core.sync.push`.

A new step is appended, never edited once released: a released database has already run it.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("segsync")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            as_of TEXT,
            exit_code INTEGER,
            summary TEXT
        );

        CREATE TABLE source_runs (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            source TEXT NOT NULL,
            status TEXT NOT NULL,
            customers INTEGER NOT NULL DEFAULT 0,
            orders INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            files_skipped INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            PRIMARY KEY (run_id, source)
        );

        CREATE TABLE source_files (
            source TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            rows INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            run_id INTEGER,
            imported_at TEXT NOT NULL,
            PRIMARY KEY (source, sha256)
        );

        CREATE TABLE source_cursors (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (source, stream)
        );

        CREATE TABLE raw_records (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            key TEXT NOT NULL,
            origin TEXT,
            data TEXT NOT NULL,
            PRIMARY KEY (source, stream, key)
        ) WITHOUT ROWID;

        CREATE TABLE customers (
            source TEXT NOT NULL,
            key TEXT NOT NULL,
            person_id INTEGER,
            link_id TEXT,
            is_guest INTEGER NOT NULL DEFAULT 0,
            email_raw TEXT,
            email TEXT,
            email_error TEXT,
            phone_raw TEXT,
            phone TEXT,
            phone_error TEXT,
            first_name TEXT,
            last_name TEXT,
            city TEXT,
            region TEXT,
            country TEXT,
            postal_code TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            birth_date TEXT,
            gender TEXT,
            email_consent TEXT,
            email_consent_at TEXT,
            sms_consent TEXT,
            sms_consent_at TEXT,
            created_at TEXT,
            updated_at TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            origin TEXT,
            record_hash TEXT NOT NULL,
            changed_run INTEGER,
            PRIMARY KEY (source, key)
        );
        CREATE INDEX customers_email ON customers(email) WHERE email IS NOT NULL;
        CREATE INDEX customers_phone ON customers(phone) WHERE phone IS NOT NULL;
        CREATE INDEX customers_person ON customers(person_id);
        CREATE INDEX customers_link ON customers(link_id) WHERE link_id IS NOT NULL;

        CREATE TABLE orders (
            source TEXT NOT NULL,
            key TEXT NOT NULL,
            customer_key TEXT NOT NULL,
            person_id INTEGER,
            name TEXT,
            ordered_at TEXT NOT NULL,
            order_date TEXT NOT NULL,
            currency TEXT,
            total REAL NOT NULL,
            refunded REAL NOT NULL DEFAULT 0,
            cancelled_at TEXT,
            test INTEGER NOT NULL DEFAULT 0,
            financial_status TEXT,
            location TEXT,
            channel TEXT,
            updated_at TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            origin TEXT,
            record_hash TEXT NOT NULL,
            changed_run INTEGER,
            PRIMARY KEY (source, key)
        );
        CREATE INDEX orders_customer ON orders(source, customer_key);
        CREATE INDEX orders_person ON orders(person_id, order_date);

        CREATE TABLE order_lines (
            source TEXT NOT NULL,
            order_key TEXT NOT NULL,
            key TEXT NOT NULL,
            title TEXT,
            sku TEXT,
            vendor TEXT,
            category TEXT,
            product_tags TEXT NOT NULL DEFAULT '[]',
            quantity REAL NOT NULL DEFAULT 1,
            price REAL,
            amount REAL,
            PRIMARY KEY (source, order_key, key)
        );

        CREATE TABLE rejects (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            origin TEXT NOT NULL,
            line INTEGER,
            field TEXT,
            reason TEXT NOT NULL,
            raw TEXT,
            run_id INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (source, stream, origin)
        );

        CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            email TEXT,
            phone TEXT,
            first_name TEXT,
            last_name TEXT,
            city TEXT,
            region TEXT,
            country TEXT,
            postal_code TEXT,
            birth_date TEXT,
            gender TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            attributes TEXT NOT NULL DEFAULT '{}',
            sources TEXT NOT NULL DEFAULT '[]',
            email_consent TEXT,
            email_consent_at TEXT,
            sms_consent TEXT,
            sms_consent_at TEXT,
            created_at TEXT,
            created_run INTEGER,
            updated_run INTEGER
        );
        CREATE INDEX people_email ON people(email);
        CREATE INDEX people_phone ON people(phone);

        CREATE TABLE person_merges (
            old_id INTEGER PRIMARY KEY,
            new_id INTEGER NOT NULL,
            run_id INTEGER,
            merged_at TEXT NOT NULL
        );

        CREATE TABLE identity_links (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            PRIMARY KEY (kind, value)
        ) WITHOUT ROWID;

        CREATE TABLE segments (
            name TEXT PRIMARY KEY,
            definition_hash TEXT NOT NULL,
            run_id INTEGER,
            as_of TEXT NOT NULL,
            size INTEGER NOT NULL,
            computed_at TEXT NOT NULL
        );

        CREATE TABLE segment_members (
            segment TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            PRIMARY KEY (segment, person_id)
        ) WITHOUT ROWID;

        CREATE TABLE sync_targets (
            sync TEXT PRIMARY KEY,
            destination TEXT NOT NULL,
            destination_type TEXT NOT NULL,
            target TEXT NOT NULL,
            remote_id TEXT,
            config_hash TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE sync_state (
            sync TEXT NOT NULL,
            key TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            person_id INTEGER,
            payload_hash TEXT,
            payload TEXT,
            acked_run INTEGER,
            acked_at TEXT,
            PRIMARY KEY (sync, key)
        ) WITHOUT ROWID;

        CREATE TABLE sync_outcomes (
            sync TEXT NOT NULL,
            key TEXT NOT NULL,
            op TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            payload_hash TEXT,
            config_hash TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            run_id INTEGER,
            updated_at TEXT,
            PRIMARY KEY (sync, key)
        ) WITHOUT ROWID;

        CREATE TABLE sync_journal (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL,
            sync TEXT NOT NULL,
            ops TEXT NOT NULL,
            changes TEXT NOT NULL,
            size INTEGER NOT NULL,
            state TEXT NOT NULL,
            remote_job TEXT,
            calls INTEGER,
            error TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX sync_journal_state ON sync_journal(sync, state);

        CREATE TABLE sync_log (
            run_id INTEGER NOT NULL,
            sync TEXT NOT NULL,
            key TEXT NOT NULL,
            op TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX sync_log_run ON sync_log(run_id, sync);
        CREATE INDEX sync_log_key ON sync_log(key);
        """
    )


@migrations()
def m002_suppression(db: Database) -> None:
    """Erasure that sticks (:mod:`segsync.core.ingest.suppress`): keyed digests of erased
    identifiers, and how many incoming records each pull dropped for matching one."""
    db.executescript(
        """
        CREATE TABLE suppressions (
            digest TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        ALTER TABLE source_runs ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
        """
    )


@migrations()
def m003_segment_sizes(db: Database) -> None:
    """Each run's segment sizes, kept per run: ``segments`` holds only the latest, and the
    report draws every segment's size over the last runs from this history."""
    db.executescript(
        """
        CREATE TABLE segment_sizes (
            run_id INTEGER NOT NULL,
            segment TEXT NOT NULL,
            as_of TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (run_id, segment)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m005_incremental(db: Database) -> None:
    """State for incremental runs (:mod:`segsync.core.ingest.resolve`,
    :mod:`segsync.core.measure.refresh`).

    * ``pending_changes``: the previous form of every resolved customer or order record that a
      pull changed or removed, written by triggers so every writer (pulls, ``forget``) is
      covered; new records need no entry (their ``person_id`` is still NULL). Resolution
      consumes it.
    * ``dirty_people``: people whose records resolution changed since the last measure; the
      measure stage consumes it.
    * ``person_expiry``: per person, the first as-of date on which one of their as-of-dependent
      attributes other than the plain day counters may change (an order entering or leaving a
      window, a lifecycle boundary, a season closing). Written with the features.
    * ``changed_features``: people whose feature rows an incremental refresh rebuilt or removed
      since the segments were last materialised; the segment stage consumes it.
    """
    db.executescript(
        """
        CREATE TABLE pending_changes (
            stream TEXT NOT NULL,
            source TEXT NOT NULL,
            key TEXT NOT NULL,
            customer_key TEXT,
            person_id INTEGER,
            email TEXT,
            phone TEXT,
            link_id TEXT
        );

        CREATE TABLE dirty_people (person_id INTEGER PRIMARY KEY);

        CREATE TABLE changed_features (person_id INTEGER PRIMARY KEY);

        CREATE TABLE person_expiry (
            person_id INTEGER PRIMARY KEY,
            expires TEXT NOT NULL
        );
        CREATE INDEX person_expiry_expires ON person_expiry(expires);

        CREATE TRIGGER customers_changed AFTER UPDATE OF record_hash ON customers
        WHEN OLD.person_id IS NOT NULL BEGIN
            INSERT INTO pending_changes(stream, source, key, person_id, email, phone, link_id)
            VALUES ('customers', OLD.source, OLD.key, OLD.person_id, OLD.email, OLD.phone,
                    OLD.link_id);
        END;
        CREATE TRIGGER customers_removed AFTER DELETE ON customers
        WHEN OLD.person_id IS NOT NULL BEGIN
            INSERT INTO pending_changes(stream, source, key, person_id, email, phone, link_id)
            VALUES ('customers', OLD.source, OLD.key, OLD.person_id, OLD.email, OLD.phone,
                    OLD.link_id);
        END;
        CREATE TRIGGER orders_changed AFTER UPDATE OF record_hash, customer_key ON orders
        WHEN OLD.person_id IS NOT NULL BEGIN
            INSERT INTO pending_changes(stream, source, key, customer_key, person_id)
            VALUES ('orders', OLD.source, OLD.key, OLD.customer_key, OLD.person_id);
        END;
        CREATE TRIGGER orders_removed AFTER DELETE ON orders
        WHEN OLD.person_id IS NOT NULL BEGIN
            INSERT INTO pending_changes(stream, source, key, customer_key, person_id)
            VALUES ('orders', OLD.source, OLD.key, OLD.customer_key, OLD.person_id);
        END;
        """
    )


@migrations()
def m004_staged_ingest(db: Database) -> None:
    """``identifier_norms``: the normalised form (or the reason there is none) of every raw
    email and phone a staged ingest has validated, keyed by the raw text and the region it was
    read in, so a re-import of the same export validates nothing again
    (:mod:`segsync.core.ingest.staged`). Only derived data: the ``meta`` key
    ``identifier_norms_versions`` names the validator versions it was filled with, and a
    different version empties it."""
    db.executescript(
        """
        CREATE TABLE identifier_norms (
            kind TEXT NOT NULL,
            region TEXT NOT NULL,
            raw TEXT NOT NULL,
            value TEXT,
            error TEXT,
            PRIMARY KEY (kind, region, raw)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m006_prediction_inputs(db: Database) -> None:
    """Per buyer, the inputs of the prediction models that do not move with the as-of date
    (:mod:`segsync.core.measure.predict`): the first purchase day (as days since 1970-01-01,
    so T is the as-of's day number minus it), repeat purchase days, days from the first to the
    last purchase day and the mean repeat-day value. A full build writes every row, an
    incremental run only those of the people it rebuilds; ``meta`` records the as-of the rows
    hold (orders dated later are not in them yet)."""
    db.executescript(
        """
        CREATE TABLE prediction_inputs (
            person_id INTEGER PRIMARY KEY,
            first_day INTEGER NOT NULL,
            x INTEGER NOT NULL,
            t_x INTEGER NOT NULL,
            mbar REAL NOT NULL
        );
        """
    )
