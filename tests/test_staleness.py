"""``segsync status --fail-if-older-than``: the monitoring check, its durations and what counts
as the last successful run."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segsync.core.runs import parse_duration, recorded, staleness
from segsync.core.store import open_store

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", dt.timedelta(minutes=90)),
    ("26h", dt.timedelta(hours=26)),
    ("2d", dt.timedelta(days=2)),
    ("1w", dt.timedelta(weeks=1)),
    ("1d12h", dt.timedelta(hours=36)),
    (" 1h 30m ", dt.timedelta(minutes=90)),
    ("45S", dt.timedelta(seconds=45)),
])
def test_durations_people_write(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["26", "", "h", "26 hours", "-1h", "1.5h", "0h", "26h!"])
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError, match="duration|zero"):
        parse_duration(text)


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("smhdw")), min_size=1,
                max_size=5))
def test_any_sum_of_units_parses_to_its_total(parts):
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    total = sum(n * seconds[u] for n, u in parts)
    text = "".join(f"{n}{u}" for n, u in parts)
    if total:
        assert parse_duration(text).total_seconds() == total
    else:
        with pytest.raises(ValueError, match="zero"):
            parse_duration(text)


def add_run(db, code: int | None, finished: dt.datetime | None, command: str = "run") -> int:
    stamp = finished.strftime("%Y-%m-%dT%H:%M:%SZ") if finished else None
    return db.execute(
        "INSERT INTO runs(command, started_at, finished_at, status, exit_code) "
        "VALUES (?, ?, ?, ?, ?)",
        [command, stamp or "2026-11-01T00:00:00Z", stamp,
         {0: "ok", 1: "partial", 4: "held", None: "running"}[code], code],
    ).lastrowid


def test_only_a_run_that_exited_0_counts(tmp_path):
    db = open_store(tmp_path / "s.db")
    day = dt.timedelta(hours=24)
    assert staleness(db, day, NOW) == "no successful 'segsync run' is recorded in this store"
    add_run(db, 0, NOW - dt.timedelta(hours=25), command="pull")  # a pull is not a run
    add_run(db, 1, NOW - dt.timedelta(hours=2))
    add_run(db, 4, NOW - dt.timedelta(hours=1))
    assert staleness(db, day, NOW) == ("no successful 'segsync run' is recorded in this store; "
                                       "the latest, run 3, exited 4 (held)")
    ok = add_run(db, 0, NOW - dt.timedelta(hours=25, minutes=5))
    assert staleness(db, dt.timedelta(hours=26), NOW) is None
    assert staleness(db, day, NOW) == (
        f"the last successful 'segsync run', run {ok}, finished 2026-11-01T10:55:00Z, "
        "25h 5m ago, more than 24h")
    killed = add_run(db, None, None)
    assert staleness(db, day, NOW).endswith(
        f"; the latest, run {killed}, has not finished (still running, or killed)")
    add_run(db, 0, NOW - dt.timedelta(minutes=3))
    assert staleness(db, dt.timedelta(minutes=90), NOW) is None


def test_status_exits_1_and_says_why_when_the_last_success_is_too_old(cli, tmp_path):
    (tmp_path / "segsync.toml").write_text("")
    db = open_store(tmp_path / "segsync.db")
    result = cli("status", "--fail-if-older-than", "26h")
    assert result.code == 1
    assert result.stderr == "error: no successful 'segsync run' is recorded in this store\n"

    with recorded(db, "run") as run:
        run.summary = {"syncs": []}
    result = cli("status", "--fail-if-older-than", "26h", "--json")
    assert result.code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["last_successful_run"]["id"] == run.id and report["stale"] is None

    db.execute("UPDATE runs SET finished_at = '2020-01-01T00:00:00Z'")
    stale = cli("status", "--fail-if-older-than", "2d", "--json")
    assert stale.code == 1 and json.loads(stale.stdout)["stale"] in stale.stderr
    result = cli("status", "--fail-if-older-than", "2d")
    assert result.code == 1
    assert result.stderr.startswith(
        f"error: the last successful 'segsync run', run {run.id}, finished "
        "2020-01-01T00:00:00Z, ")
    assert result.stderr.endswith(" ago, more than 2d\n")
    assert "recent runs" in result.stdout  # the report itself is still printed
    assert cli("status").code == 0  # without the option status never fails on age


def test_a_duration_without_a_unit_is_a_usage_error(cli, tmp_path):
    (tmp_path / "segsync.toml").write_text("")
    result = cli("status", "--fail-if-older-than", "26")
    assert result.code == 2
    assert "'26' is not a duration; write a number and a unit, such as 90m, 26h or 2d" in (
        result.stderr)
