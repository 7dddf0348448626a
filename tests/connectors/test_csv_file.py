"""The csv_file destination: file layout, change log, atomic writes, no rewrite on no change."""

from __future__ import annotations

import csv
import json
import os

import pytest

from segsync.connectors.csv_file import destination as csv_module
from segsync.connectors.csv_file.destination import CsvFileConfig, CsvFileDestination
from segsync.core.connector import Change
from segsync.core.errors import ConfigError
from segsync.core.settings import SyncSettings
from segsync.core.testing import DestinationContract, SyncHarness
from segsync.plugins import load_plugins


def make(tmp_path, **config) -> CsvFileDestination:
    cfg = CsvFileConfig.model_validate(
        {"folder": "out", **config}, context={"base_dir": tmp_path}
    )
    return CsvFileDestination("files", cfg, tmp_path)


def add(key: str, **fields) -> Change:
    return Change(key, "add", fields=fields, consent="SUBSCRIBED")


def read_csv(path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestCsvFileContract(DestinationContract):
    @pytest.fixture
    def destination(self, tmp_path):
        return make(tmp_path)


def test_it_is_registered_as_a_built_in_plugin():
    assert load_plugins().destination_class("csv_file") is CsvFileDestination


def test_the_folder_is_relative_to_the_config_file(tmp_path):
    dest = make(tmp_path)
    assert dest.folder == tmp_path / "out"
    assert dest.capabilities.container == "file" and dest.capabilities.max_concurrency == 1
    with pytest.raises(ValueError, match="folder"):
        CsvFileConfig.model_validate({}, context={"base_dir": tmp_path})


def test_members_are_written_sorted_with_their_fields(tmp_path):
    dest = make(tmp_path)
    target = dest.ensure_target("vip", {})
    outcomes = dest.apply(target, [
        add("zoe@shop.test", first_name="Zoë", tier="gold"),
        add("ada@shop.test", first_name="Ada"),
        add("bob@shop.test", first_name="Bob", orders=3, spent=12.5),
    ])
    assert [(o.key, o.status) for o in outcomes] == [
        ("zoe@shop.test", "ok"), ("ada@shop.test", "ok"), ("bob@shop.test", "ok")
    ]
    assert read_csv(tmp_path / "out" / "vip.csv") == [
        ["email", "first_name", "orders", "spent", "tier"],
        ["ada@shop.test", "Ada", "", "", ""],
        ["bob@shop.test", "Bob", "3", "12.5", ""],
        ["zoe@shop.test", "Zoë", "", "", "gold"],
    ]
    assert dest.members(target) == ["ada@shop.test", "bob@shop.test", "zoe@shop.test"]


def test_the_change_log_records_adds_updates_and_removes_with_the_run_time(tmp_path):
    dest = make(tmp_path)
    target = dest.ensure_target("vip", {})
    dest.apply(target, [add("ada@shop.test", first_name="Ada"), add("bob@shop.test")])
    dest.apply(target, [
        Change("ada@shop.test", "update", fields={"first_name": "Ada L."}),
        Change("bob@shop.test", "remove"),
        Change("nobody@shop.test", "remove"),
    ])
    lines = read_log(tmp_path / "out" / "vip.changes.jsonl")
    at = lines[0]["at"]
    assert at.endswith("Z") and all(line["at"] == at for line in lines)
    assert [{k: v for k, v in line.items() if k != "at"} for line in lines] == [
        {"op": "add", "key": "ada@shop.test", "fields": {"first_name": "Ada"}},
        {"op": "add", "key": "bob@shop.test", "fields": {}},
        {"op": "update", "key": "ada@shop.test", "fields": {"first_name": "Ada L."},
         "before": {"first_name": "Ada"}},
        {"op": "remove", "key": "bob@shop.test"},
    ]
    assert read_csv(tmp_path / "out" / "vip.csv") == [
        ["email", "first_name"], ["ada@shop.test", "Ada L."]
    ]


def test_a_batch_that_changes_nothing_rewrites_nothing(tmp_path):
    dest = make(tmp_path)
    target = dest.ensure_target("vip", {})
    batch = [add("ada@shop.test", first_name="Ada", orders=3, spent=12.5)]
    dest.apply(target, batch)
    csv_path, log_path = dest.paths("vip")
    before = (os.stat(csv_path), os.stat(log_path), csv_path.read_bytes())
    # The same values, as a replay or as they read back from the file (text), and a removal
    # of someone who is not there: all no-ops.
    dest.apply(target, batch)
    dest.apply(target, [add("ada@shop.test", first_name="Ada", orders="3", spent="12.5"),
                        Change("ghost@shop.test", "remove")])
    after = (os.stat(csv_path), os.stat(log_path), csv_path.read_bytes())
    assert before[0].st_ino == after[0].st_ino and before[0].st_mtime_ns == after[0].st_mtime_ns
    assert before[1].st_size == after[1].st_size
    assert before[2] == after[2]


def test_the_file_is_replaced_atomically(tmp_path, monkeypatch):
    dest = make(tmp_path)
    target = dest.ensure_target("vip", {})
    dest.apply(target, [add("ada@shop.test")])
    csv_path = dest.paths("vip")[0]
    inode = os.stat(csv_path).st_ino
    original = csv_path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(csv_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        dest.apply(target, [add("bob@shop.test")])
    assert csv_path.read_bytes() == original
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["vip.changes.jsonl", "vip.csv"]
    monkeypatch.undo()
    dest.apply(target, [add("bob@shop.test")])
    # A new inode: the file was replaced by rename, never rewritten in place.
    assert os.stat(csv_path).st_ino != inode
    assert dest.members(target) == ["ada@shop.test", "bob@shop.test"]


def test_phone_identity_names_the_key_column(tmp_path):
    dest = make(tmp_path, identity="phone")
    assert dest.capabilities.identity == "phone"
    target = dest.ensure_target("sms", {})
    dest.apply(target, [Change("+15005550001", "add", consent="SUBSCRIBED")])
    assert read_csv(tmp_path / "out" / "sms.csv") == [["phone"], ["+15005550001"]]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_a_target_must_be_a_plain_file_name(tmp_path, name):
    with pytest.raises(ConfigError, match="cannot be a file name"):
        make(tmp_path).ensure_target(name, {})


def test_check_reports_the_folder_or_refuses_an_unwritable_one(tmp_path):
    assert make(tmp_path).check() == [f"writes to {tmp_path / 'out'}"]
    blocked = make(tmp_path, folder=str(tmp_path / "missing" / "deeper"))
    with pytest.raises(ConfigError, match="cannot write"):
        blocked.check()


def test_end_to_end_a_quiet_run_touches_no_file(tmp_path):
    dest = make(tmp_path)
    sync = SyncSettings(segment="vip", destination="files", fields={"name": "first_name"})
    h = SyncHarness(dest, sync)
    for pid in range(1, 6):
        h.person(pid, email=f"p{pid}@shop.test", email_subscription_status="SUBSCRIBED",
                 first_name=f"N{pid}")
    assert h.run().added == 5
    csv_path, log_path = dest.paths("vip")
    stamp = (os.stat(csv_path).st_mtime_ns, os.stat(log_path).st_size)
    quiet = h.run()
    assert (quiet.status, quiet.write_calls) == ("ok", 0)
    assert (os.stat(csv_path).st_mtime_ns, os.stat(log_path).st_size) == stamp
    h.leave(5)
    h.update(1, first_name="Ada")
    result = h.run()
    assert (result.updated, result.removed) == (1, 1)
    assert read_csv(csv_path) == [
        ["email", "name"],
        ["p1@shop.test", "Ada"],
        ["p2@shop.test", "N2"],
        ["p3@shop.test", "N3"],
        ["p4@shop.test", "N4"],
    ]
    assert [(line["op"], line["key"]) for line in read_log(log_path)][-2:] == [
        ("update", "p1@shop.test"), ("remove", "p5@shop.test")
    ]
