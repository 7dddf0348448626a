"""The report's numbers, read from the store by the functions the CLI's ``--json`` uses.

Segment sizes come from :func:`~segsync.core.segment.stored_segments` (``segments list``), the
store's people, sources and runs from :func:`status_data` (``status``), the fit from
:func:`~segsync.core.measure.fit_from_store` (``model fit``); only what no command shows yet
(the RFM grid, the distributions, the size history) is queried here, from the tables the
stages write.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..ingest import people_count, rejected_rows, source_stats
from ..measure import describe_gap, fit_from_store
from ..runs import last_successful_run, recent_runs
from ..segment import stored_segments
from ..settings import Settings
from ..sync.gate import CONSENT_LABELS

#: The lifecycle stages a buyer moves through, in funnel order (PROSPECT has no order yet).
FUNNEL = ["NEW", "ACTIVE", "REACTIVATED", "AT_RISK", "LAPSED", "LOST"]
#: How many runs the size history and the sync health look back over.
HISTORY_RUNS = 12


def status_data(db: Database, store_path: Path, limit: int, rejects: bool = False
                ) -> dict[str, Any]:
    """What ``segsync status --json`` prints: people, per source counts, the recent runs."""
    data = {
        "store": str(store_path),
        "people": people_count(db),
        "sources": source_stats(db),
        "runs": recent_runs(db, limit),
        "last_successful_run": last_successful_run(db),
    }
    if rejects:
        data["rejects"] = rejected_rows(db, limit)
    return data


def segment_sizes(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """Each configured segment as ``segments list --json`` has it, plus its sizes at the last
    runs (oldest first) and the change since the run before the last."""
    rows = stored_segments(db, settings.segments)
    history: dict[str, list[int]] = {}
    for name, size in db.execute(
        "SELECT segment, size FROM segment_sizes WHERE run_id IN (SELECT DISTINCT run_id FROM "
        "segment_sizes ORDER BY run_id DESC LIMIT ?) ORDER BY run_id", [HISTORY_RUNS]
    ):
        history.setdefault(name, []).append(size)
    for row in rows:
        sizes = history.get(row["name"], [])
        row["history"] = sizes
        row["change"] = sizes[-1] - sizes[-2] if len(sizes) > 1 else None
    return rows


def rfm_grid(db: Database) -> dict[str, Any]:
    """People and average spend per recency × frequency score cell, and per named group."""
    cells = [
        {"r": r, "f": f, "people": n, "avg_spend": round(avg or 0.0, 2)}
        for r, f, n, avg in db.execute(
            "SELECT recency_score, frequency_score, count(*), avg(amount_spent) "
            "FROM person_features WHERE recency_score IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")
    ]
    groups = dict(db.execute(
        "SELECT rfm_group, count(*) FROM person_features WHERE rfm_group IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1").fetchall())
    return {"cells": cells, "groups": groups}


def lifecycle(db: Database) -> dict[str, Any]:
    """Buyers per lifecycle stage in funnel order, with their share of buyers."""
    counts = dict(db.execute("SELECT lifecycle_stage, count(*) FROM person_features "
                             "GROUP BY 1").fetchall())
    buyers = sum(counts.get(s, 0) for s in FUNNEL)
    return {
        "prospects": counts.get("PROSPECT", 0),
        "buyers": buyers,
        "stages": [{"stage": s, "people": counts.get(s, 0),
                    "share": round(counts.get(s, 0) / buyers, 4) if buyers else 0.0}
                   for s in FUNNEL],
    }


def predictions(db: Database, as_of: dt.date) -> dict[str, Any]:
    """P(alive) and predicted 12-month value of everyone with predictions, the fit's
    parameters as ``segsync model fit --json`` gives them, and why people lack predictions
    in the words ``segsync run`` uses."""
    fit = fit_from_store(db, as_of)
    values: dict[str, list[float]] = {"p_alive": [], "predicted_12m_spend": []}
    if db["person_predictions"].exists():
        for p_alive, spend in db.execute(
                "SELECT p_alive, predicted_12m_spend FROM person_predictions"):
            values["p_alive"].append(p_alive)
            if spend is not None:
                values["predicted_12m_spend"].append(spend)
    return {
        "as_of": fit["as_of"],
        "bgnbd": fit["bgnbd"],
        "gamma_gamma": fit["gamma_gamma"],
        "problems": fit["problems"],
        "gaps": [describe_gap(g) for g in fit["coverage"]["missing"]],
        "with_predictions": len(values["p_alive"]),
        **values,
    }


def sync_health(db: Database, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sync, its adds, removes and failures at each of the given runs (oldest first), and
    at its latest run its members by consent category (the words ``run`` and ``plan`` print:
    ``consent``), the gate's detailed reasons (``gate``) and guardrail holds."""
    syncs: dict[str, dict[str, Any]] = {}
    for run in reversed(runs):
        if run["command"] != "run":
            continue
        for s in (run["summary"] or {}).get("syncs", []):
            entry = syncs.setdefault(s["sync"], {"runs": []})
            entry["runs"].append({
                "run_id": run["id"], "added": s.get("added", 0), "removed": s.get("removed", 0),
                "failed": s.get("failed", 0) + s.get("rejected", 0),
            })
            consent = s.get("consent", {})
            entry["consent"] = {label: consent.get(key, 0)
                                for key, label in CONSENT_LABELS.items()}
            entry["gate"] = s.get("invalid_reasons", {})
            entry["held"] = s.get("held", 0)
            entry["held_reason"] = s.get("held_reason")
            entry["status"] = s.get("status")
    return syncs


#: A POS order rejected for one bad line says so before the line's own reason, which is the
#: reason worth counting (connectors/pos_csv/orders.py).
_PART_OF_ORDER = re.compile(r"^part of order .*?, rejected because of line \d+: ")


def top_reject_reasons(db: Database, limit: int = 5) -> list[dict[str, Any]]:
    """The most common reasons rows were rejected, whole orders counted by their bad line's."""
    counts = Counter(_PART_OF_ORDER.sub("", reason)
                     for (reason,) in db.execute("SELECT reason FROM rejects"))
    return [{"reason": r, "rows": n}
            for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def data_quality(db: Database, sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows imported and rejected per source (from ``status``), the records of erased people
    dropped at import (``segsync forget``), the top reject reasons and how many person ids
    identity resolution merged into another."""
    dropped = dict(db.execute("SELECT source, coalesce(sum(suppressed), 0) FROM source_runs "
                              "GROUP BY source"))
    return {
        "sources": {name: {"imported": s["customers"] + s["orders"], "rejected": s["rejected"],
                           "erased_dropped": dropped.get(name, 0)}
                    for name, s in sources.items()},
        "top_reasons": top_reject_reasons(db),
        "merged": db.execute("SELECT count(*) FROM person_merges").fetchone()[0],
    }


def report_data(db: Database, settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Every section's numbers, as one JSON-ready dict."""
    status = status_data(db, settings.store.path, HISTORY_RUNS)
    return {
        "as_of": as_of.isoformat(),
        "status": status,
        "segments": segment_sizes(db, settings),
        "rfm": rfm_grid(db),
        "lifecycle": lifecycle(db),
        "predictions": predictions(db, as_of),
        "syncs": sync_health(db, status["runs"]),
        "quality": data_quality(db, status["sources"]),
    }
