"""Incremental measure: bring ``person_features`` to a new as-of date touching only who changed.

A full build (:func:`.predict.write_predictions`, then :func:`.scores.build_features`) reads
every order. Between two runs most people are unchanged, and their rows differ from a full
rebuild's in only two ways, which this module handles without a rebuild:

* **Their records changed.** Resolution lists those people in ``dirty_people`` (changed,
  added, removed or re-linked customer records and orders, merges and splits).
* **The as-of date moved.** Every as-of-dependent attribute is one of three kinds:

  - *plain day counters* (``days_since_last_order``, ``age``, ``birthday_in_days``,
    ``first_order_anniversary_in_days``) and the attributes derived from them and from the
    predictions (``lifecycle_stage``, ``is_fading_regular``): functions of the row and the
    as-of, recomputed for everyone by one UPDATE (the global pass);
  - *order-window attributes* (``orders_last_Nd``, ``spent_last_Nd``, orders dated after the
    last as-of becoming valid, ``bought_this_time_last_year``, a season closing for
    ``is_seasonal_buyer``): they change only on dates computable from each person's order dates
    and the thresholds. ``person_expiry`` holds, per person, the first such date after the
    as-of the row was built for; people whose date has come are rebuilt;
  - *population-relative attributes* (RFM scores and group, ``spend_percentile``,
    ``usage_tier``, the shop-wide gap used for AT_RISK, the fitted predictions): ranked again
    over the feature table in the global pass (:func:`.scores.rescore`); the predictions are
    refitted.

The rows of the people to rebuild are built again by the full build's own code,
:func:`.scores.build_features` given the table of those people: their orders are reached by
index and summed in the order a full build sums them, and everything but the global pass's
columns comes out as a full build's. The result is the table a full build gives
(``tests/measure/test_incremental.py`` checks it after random edit sequences). A full build
happens on ``--full-refresh``, on the first run, when the as-of goes back, when the
``[scoring]`` settings change, or after a full resolution.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlite_utils import Database

from ..ingest.resolve import MEASURE_FULL_KEY
from ..settings import ScoringSettings
from .features import WINDOW_DAYS
from .predict import write_predictions
from .scores import build_features, in_season, rescore

#: ``meta`` key of the as-of and settings the stored features were built for.
STATE_KEY = "measured"

#: The people whose rows this refresh rebuilds (or removes).
_REFRESHED = "temp.refreshed_people"

#: ``meta`` key set by a full build: every segment must be evaluated over everyone next.
SEGMENTS_STALE_KEY = "segments_stale"

#: Bumped when what the stored rows mean changes, so an upgrade forces one full build.
_VERSION = 1

_VALID = "o.cancelled_at IS NULL AND o.test = 0"


def fingerprint(scoring: ScoringSettings) -> str:
    """What, besides the as-of date and the data, the stored features depend on."""
    text = json.dumps({"version": _VERSION, "scoring": scoring.model_dump(mode="json")},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _state(db: Database) -> dict[str, Any] | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [STATE_KEY]).fetchone()
    return json.loads(row[0]) if row else None


def refresh_features(db: Database, as_of: dt.date, scoring: ScoringSettings, *,
                     full: bool = False, clv_months: int = 12) -> dict[str, Any]:
    """Bring ``person_features`` (and ``person_predictions``) to ``as_of``.

    Returns ``mode`` (``"full"`` or ``"incremental"``), ``rebuilt`` (rows recomputed), the
    predictions' ``coverage`` (None with predictions off) and ``changed``: the table of people
    whose rows changed beyond the global pass's columns since the segments were last
    materialised (``changed_features``), or None when that is everyone. Call
    :func:`segments_done` once the segments are materialised.
    """
    db.execute(f"DROP TABLE IF EXISTS {_REFRESHED}")
    state = _state(db)
    incremental = (
        not full and state is not None and db["person_features"].exists()
        and state["fingerprint"] == fingerprint(scoring)
        and state["as_of"] <= as_of.isoformat()
        and db.execute("SELECT 1 FROM meta WHERE key = ?", [MEASURE_FULL_KEY]).fetchone() is None
    )
    coverage = None
    if not incremental:
        if scoring.predictions:
            coverage = write_predictions(db, as_of, clv_months=clv_months)["coverage"]
        build_features(db, as_of, scoring)
        with db.atomic():
            db.execute("DELETE FROM person_expiry")
            _write_expiry(db, as_of, scoring, None)
            rebuilt = db.execute("SELECT count(*) FROM person_features").fetchone()[0]
            _finish(db, as_of, scoring)
            db.execute("DELETE FROM changed_features")
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, '1')",
                       [SEGMENTS_STALE_KEY])
        return {"mode": "full", "rebuilt": rebuilt, "coverage": coverage, "changed": None}
    with db.atomic():
        db.execute(f"CREATE TEMP TABLE {_REFRESHED.split('.')[1]} (person_id INTEGER PRIMARY KEY)")
        db.execute(f"INSERT INTO {_REFRESHED} SELECT person_id FROM dirty_people")
        db.execute(f"INSERT OR IGNORE INTO {_REFRESHED} SELECT person_id FROM person_expiry "
                   "WHERE expires <= ?", [as_of.isoformat()])
        rebuilt = build_features(db, as_of, scoring, _REFRESHED)["rebuilt"]
    if scoring.predictions:
        coverage = write_predictions(db, as_of, clv_months=clv_months, changed=_REFRESHED,
                                     since=dt.date.fromisoformat(state["as_of"]))["coverage"]
    with db.atomic():
        rescore(db, as_of, scoring)
        db.execute(f"DELETE FROM person_expiry WHERE person_id IN (SELECT person_id FROM "
                   f"{_REFRESHED})")
        _write_expiry(db, as_of, scoring, _REFRESHED)
        _finish(db, as_of, scoring)
        db.execute(f"INSERT OR IGNORE INTO changed_features SELECT person_id FROM {_REFRESHED}")
        stale = db.execute("SELECT 1 FROM meta WHERE key = ?", [SEGMENTS_STALE_KEY]).fetchone()
    return {"mode": "incremental", "rebuilt": rebuilt, "coverage": coverage,
            "changed": None if stale else "changed_features"}


def segments_done(db: Database) -> None:
    """Record that the segments reflect the current feature rows."""
    with db.atomic():
        db.execute("DELETE FROM changed_features")
        db.execute("DELETE FROM meta WHERE key = ?", [SEGMENTS_STALE_KEY])


def _finish(db: Database, as_of: dt.date, scoring: ScoringSettings) -> None:
    db.execute("DELETE FROM dirty_people")
    db.execute("DELETE FROM meta WHERE key = ?", [MEASURE_FULL_KEY])
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
               [STATE_KEY, json.dumps({"as_of": as_of.isoformat(),
                                       "fingerprint": fingerprint(scoring)})])


def _write_expiry(db: Database, as_of: dt.date, scoring: ScoringSettings,
                  people: str | None) -> None:
    """Write ``person_expiry`` for ``people`` (a table of person ids; None for everyone).

    A person's date is the first after ``as_of`` on which one of their orders (valid, refund
    rows included) enters or leaves a trailing window, becomes valid (dated after the as-of),
    enters or leaves the "this time last year" window, or falls in a season that closes.
    """
    w = scoring.last_year_window_days
    md = "substr(o.order_date, 6, 5)"
    if scoring.seasonal_start <= scoring.seasonal_end:
        season_year = "substr(o.order_date, 1, 4)"
    else:  # a window wrapping the new year closes in the next year for its autumn part
        season_year = (f"CAST(substr(o.order_date, 1, 4) + ({md} > :season_end) AS TEXT)")
    candidates = [
        "o.order_date",
        *(f"date(o.order_date, '+{n} days')" for n in WINDOW_DAYS),
        # shift_date(as_of, -1 year) >= d - w first holds on (d - w) + 1 year, as SQLite adds
        # years (29 February + 1 year is 1 March); it passes d + w on (d + w + 1) + 1 year.
        f"date(o.order_date, '-{w} days', '+1 year')",
        f"date(o.order_date, '+{w + 1} days', '+1 year')",
        f"CASE WHEN {in_season(scoring)} THEN "
        f"date({season_year} || '-' || :season_end, '+1 day') END",
    ]
    # Multi-argument min() is NULL when any argument is: a date past every real one stands in.
    after = ", ".join(f"coalesce(CASE WHEN {c} > :as_of THEN {c} END, '9999')"
                      for c in candidates)
    source = ("orders AS o NOT INDEXED" if people is None else
              f"{people} AS r CROSS JOIN orders AS o ON o.person_id = r.person_id")
    db.execute(
        f"""INSERT INTO person_expiry(person_id, expires)
        SELECT o.person_id, min(min({after})) AS expires
        FROM {source}
        WHERE o.person_id IS NOT NULL AND {_VALID}
        GROUP BY o.person_id
        HAVING expires < '9999'""",
        {"as_of": as_of.isoformat(), "season_start": scoring.seasonal_start,
         "season_end": scoring.seasonal_end},
    )
