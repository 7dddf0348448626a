"""The scheduled job end to end: the real CLI over the bundled demo exports and example config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from segsync.core.store import open_store, run_lock

EMAIL_TARGETS = ("lapsed-winback", "mystery-readers", "vip", "new-customers")


def members(folder: Path, target: str) -> set[str]:
    with (folder / f"{target}.csv").open(newline="") as fh:
        return {row[0] for i, row in enumerate(csv.reader(fh)) if i}


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_json(cli, *args):
    result = cli("run", "--json", *args)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def test_first_run_fills_the_targets_and_a_second_run_changes_nothing(demo, cli):
    result, summary = run_json(cli)
    assert result.code == 0, result.stderr
    assert all(size > 0 for size in summary["segments"].values()), summary["segments"]
    added = {s["sync"]: s["added"] for s in summary["syncs"]}
    assert all(n > 0 for n in added.values()), added
    for target in EMAIL_TARGETS:
        assert len(members(demo / "out", target)) == next(
            s["added"] for s in summary["syncs"] if s["target"] == target)
    before = snapshot(demo / "out")

    result, again = run_json(cli)
    assert result.code == 0, result.stderr
    for sync in again["syncs"]:
        assert (sync["added"], sync["updated"], sync["removed"], sync["write_calls"]) == (
            0, 0, 0, 0), sync
    assert snapshot(demo / "out") == before  # not even rewritten with the same bytes
    human = cli("status").stdout
    assert "5 syncs: +0 ~0 -0, 0 rejected, 0 failed, 0 held" in human
    assert f"5 syncs: +{sum(added.values())} ~0 -0" in human


def test_the_demo_predicts_churn_risk_and_value_for_every_buyer(demo, cli):
    # The demo's fit runs a and b into the millions (one drop-out probability for all): it
    # used to print "predictions skipped: the fitted model gives non-finite expected purchases".
    result, summary = run_json(cli)
    assert result.code == 0, result.stderr
    assert "skipped" not in result.stderr and "predictions" not in result.stderr
    coverage = summary["predictions"]
    assert coverage["with_purchase_predictions"] == coverage["with_spend_predictions"] == (
        coverage["buyers"]) > 0
    (prospects,) = coverage["missing"]  # only people with no order yet lack them
    assert prospects["model"] is None
    assert prospects["people"] == coverage["people"] - coverage["buyers"]
    assert summary["segments"]["churn_risk"] > 0
    assert summary["segments"]["worth_winning_back"] > 0

    human = cli("run")
    assert (f"predictions for {coverage['buyers']} of {coverage['people']} people"
            in human.stdout)
    fit = cli("model", "fit", "--json")
    assert fit.code == 0, fit.stderr
    bgnbd = json.loads(fit.stdout)["bgnbd"]
    assert bgnbd["converged"] and bgnbd["a"] > 1e4
    assert 0 < bgnbd["mean_dropout_probability"] < 0.5


def test_model_fit_on_too_short_a_history_says_who_and_why(demo, cli):
    assert cli("pull").code == 0
    result = cli("model", "fit", "--as-of", "2026-01-20")
    assert result.code == 1
    assert "have none: no valid order up to 2026-01-20" in result.stdout
    assert ("error: no predictions: too little history: 1 of 32 buyers bought again up to "
            "2026-01-20; the purchase model needs at least 10 repeat buyers") in result.stderr
    # The run of that day still works, and says the same as a warning.
    run = cli("run", "--as-of", "2026-01-20")
    assert "warning: predictions: 32 have none: too little history" in run.stderr
    assert "predictions for 0 of" in run.stdout


def set_cell(path: Path, match_column: str, match_value: str, column: str, value: str) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
        fieldnames = list(rows[0])
    hits = [r for r in rows if r[match_column].strip().lower() == match_value]
    assert hits, f"{match_value} not in {path.name}"
    for row in hits:
        row[column] = value
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def test_an_unsubscribe_in_one_export_removes_exactly_that_person(demo, cli):
    assert cli("run").code == 0
    out = demo / "out"
    before = {t: members(out, t) for t in EMAIL_TARGETS}
    sms_before = snapshot(out / "sms")
    exports = demo / "examples" / "exports"
    shopify_emails = {r["Email"].strip().lower() for r in csv.DictReader(
        (exports / "shopify-customers_export.csv").open(encoding="utf-8"))}
    person = sorted(before["vip"] & shopify_emails)[0]
    set_cell(exports / "shopify-customers_export.csv", "Email", person,
             "Accepts Email Marketing", "unsubscribed-by-hand")
    set_cell(exports / "shopify-customers_export.csv", "Email", person,
             "Accepts Email Marketing", "no")
    # "no" is NOT_SUBSCRIBED, not an opt-out; an explicit opt-out must win over Square's yes.
    square = exports / "square-customers-2026-11-01.csv"
    if person in {r["Email Address"].strip().lower() for r in csv.DictReader(
            square.open(encoding="utf-8"))}:
        set_cell(square, "Email Address", person, "Email Subscription Status", "unsubscribed")

    result, summary = run_json(cli)
    assert result.code == 0, result.stderr
    for target in EMAIL_TARGETS:
        assert members(out, target) == before[target] - {person}, target
    removed = {s["target"]: s["removed"] for s in summary["syncs"]}
    assert removed == {t: int(person in before[t]) for t in EMAIL_TARGETS} | {
        "fading-regulars": 0}
    assert snapshot(out / "sms") == sms_before
    log = json.loads(cli("log", "--key", person.upper(), "--json").stdout)
    assert {row["op"] for row in log if row["run_id"] == summary["run_id"]} == {"remove"}


def store_state(path: Path):
    db = open_store(path)
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("sync_state", "segment_members", "runs", "sync_log", "customers")}


def test_plan_prints_the_diff_and_changes_nothing(demo, cli):
    assert cli("run").code == 0
    cli_env_query = "last_order_date < -6m"
    import os

    os.environ["SEGSYNC_SEGMENTS__LAPSED__QUERY"] = cli_env_query
    try:
        before_db = store_state(demo / "segsync.db")
        before_files = snapshot(demo / "out")
        result = cli("plan", "--json")
        assert result.code == 0, result.stderr
        plan = {s["sync"]: s for s in json.loads(result.stdout)["syncs"]}
        assert plan["lapsed_winback"]["adds"] > 0
        assert {c["op"] for c in plan["lapsed_winback"]["changes"]} == {"add"}
        assert plan["vip_list"]["adds"] == plan["vip_list"]["removes"] == 0
        human = cli("plan")
        assert "lapsed_winback" in human.stdout and "add" in human.stdout
        assert store_state(demo / "segsync.db") == before_db
        assert snapshot(demo / "out") == before_files
    finally:
        del os.environ["SEGSYNC_SEGMENTS__LAPSED__QUERY"]


def test_large_removals_are_held_until_allowed(demo, cli, monkeypatch):
    assert cli("run").code == 0
    before = members(demo / "out", "lapsed-winback")
    assert before
    monkeypatch.setenv("SEGSYNC_SEGMENTS__LAPSED__QUERY", "last_order_date < 1990-01-01")
    result, summary = run_json(cli)
    assert result.code == 4
    lapsed = next(s for s in summary["syncs"] if s["sync"] == "lapsed_winback")
    assert lapsed["held"] == len(before) and lapsed["removed"] == 0
    assert members(demo / "out", "lapsed-winback") == before
    assert "--allow-large-removals" in result.stderr
    result, summary = run_json(cli, "--allow-large-removals")
    assert result.code == 0, result.stderr
    assert members(demo / "out", "lapsed-winback") == set()


def test_a_failed_source_blocks_removals_but_not_other_work(demo, cli, monkeypatch):
    assert cli("run").code == 0
    before = members(demo / "out", "lapsed-winback")
    monkeypatch.setenv("SEGSYNC_SEGMENTS__LAPSED__QUERY", "last_order_date < -9m")
    monkeypatch.setenv("SEGSYNC_SOURCES__SQUARE_SALES__PATH", "examples/exports/missing.csv")
    result, summary = run_json(cli)
    assert result.code == 4
    lapsed = next(s for s in summary["syncs"] if s["sync"] == "lapsed_winback")
    assert lapsed["removed"] == 0 and lapsed["held"] > 0
    assert "source pull failed: square_sales" in summary["removals_blocked"]
    assert members(demo / "out", "lapsed-winback") == before
    assert "source square_sales" in result.stderr


def test_a_second_run_while_one_holds_the_lock_exits_3_and_changes_nothing(demo, cli):
    assert cli("run").code == 0
    before = store_state(demo / "segsync.db")
    with run_lock(demo / "segsync.db"):
        result = cli("run")
    assert result.code == 3
    assert "another segsync run holds the lock" in result.stderr
    assert store_state(demo / "segsync.db") == before


def test_status_reports_what_was_imported_and_a_rerun_imports_nothing(demo, cli):
    first = json.loads(cli("pull", "--json").stdout)
    assert sum(s["customers"] for s in first["sources"]) > 0
    status = json.loads(cli("status", "--json").stdout)
    assert status["sources"]["square_customers"]["customers"] == 60
    assert status["sources"]["shopify_orders"]["orders"] == 128
    again = json.loads(cli("pull", "--json").stdout)
    for source in again["sources"]:
        assert (source["customers"], source["orders"], source["files_imported"],
                source["files_skipped"]) == (0, 0, 0, 1)


def test_reconcile_repairs_changes_made_by_hand_at_the_destination(demo, cli):
    assert cli("run").code == 0
    path = demo / "out" / "vip.csv"
    before = members(demo / "out", "vip")
    rows = list(csv.reader(path.open(newline="")))
    header, body = rows[0], rows[1:]
    dropped = body[0][0]
    stranger = ["someone.else@example.net"] + [""] * (len(header) - 1)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body[1:], stranger])
    # A plain run trusts its baseline and sees nothing to do.
    _, plain = run_json(cli)
    assert next(s for s in plain["syncs"] if s["target"] == "vip")["write_calls"] == 0
    result, summary = run_json(cli, "--reconcile")
    assert result.code == 0, result.stderr
    vip = next(s for s in summary["syncs"] if s["target"] == "vip")
    assert (vip["added"], vip["removed"]) == (1, 1)
    assert members(demo / "out", "vip") == before
    assert dropped in before and "someone.else@example.net" not in before


def test_forget_erases_the_person_and_the_next_run_removes_them_everywhere(demo, cli,
                                                                          monkeypatch):
    assert cli("run").code == 0
    vip = members(demo / "out", "vip")
    person = sorted(vip)[0]
    db_path = demo / "segsync.db"
    db = open_store(db_path)
    person_id = db.execute("SELECT person_id FROM identity_links WHERE value = ?",
                           [person]).fetchone()[0]
    phones = [r[0] for r in db.execute(
        "SELECT phone FROM customers WHERE person_id = ? AND phone NOTNULL", [person_id])]
    db.close()

    result = cli("forget", person.upper(), "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["people"] == 1 and report["customers"] >= 1 and report["pending_removals"] >= 1

    db = open_store(db_path)
    for table, column in (("people", "id"), ("customers", "person_id"), ("orders", "person_id"),
                          ("segment_members", "person_id"), ("identity_links", "person_id"),
                          ("person_features", "person_id")):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                          [person_id]).fetchone()[0] == 0, table
    for value in [person, *phones]:
        for table in ("sync_log", "identity_links"):
            column = "key" if table == "sync_log" else "value"
            assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                              [value]).fetchone()[0] == 0, (table, value)
    db.close()

    # The next run takes them out of every target (allowing the removal on a small list).
    result, summary = run_json(cli, "--allow-large-removals")
    assert result.code == 0, result.stderr
    assert person not in members(demo / "out", "vip")
    db = open_store(db_path)  # the removal is logged under a stand-in, not the address
    assert db.execute("SELECT count(*) FROM sync_log WHERE key = ?", [person]).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sync_log WHERE run_id = ? AND op = 'remove' "
                      "AND key LIKE 'forgotten:%'", [summary["run_id"]]).fetchone()[0] >= 1
    assert db.execute("SELECT count(*) FROM sync_state WHERE key = ?",
                      [person]).fetchone()[0] == 0


def test_forget_refuses_what_is_not_an_identifier(demo, cli):
    result = cli("forget", "not an email")
    assert result.code == 2
    assert "neither a valid email address nor a phone number" in result.stderr
