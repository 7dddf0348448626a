"""The CLI as a marketer meets it: names checked before work, clear errors, summaries in words."""

from __future__ import annotations

import json

import pytest

VALID_SYNCS = "fading_sms, lapsed_winback, mystery_newsletter, new_customer_welcome, vip_list"


@pytest.mark.parametrize("command", [("run",), ("plan",)])
def test_an_unknown_sync_is_refused_before_any_work(demo, cli, command):
    result = cli(*command, "--sync", "nosuch")
    assert result.code == 2
    assert f"no sync named 'nosuch' (syncs: {VALID_SYNCS})" in result.stderr
    status = json.loads(cli("status", "--json").stdout)
    assert status["runs"] == []  # no failed run recorded
    assert status["people"] == 0  # nothing pulled


def test_log_refuses_an_unknown_sync_but_accepts_a_configured_one(demo, cli):
    result = cli("log", "--sync", "nosuch")
    assert result.code == 2
    assert f"(syncs: {VALID_SYNCS})" in result.stderr
    assert cli("log", "--sync", "vip_list").code == 0


def test_pull_and_segments_refuse_unknown_names_listing_the_valid_ones(demo, cli):
    pulled = cli("pull", "--source", "nosuch", "--source", "square_sales")
    assert pulled.code == 2
    assert "no source named 'nosuch' (sources: shopify_customers, shopify_orders, " \
        "square_customers, square_sales)" in pulled.stderr
    assert json.loads(cli("status", "--json").stdout)["runs"] == []
    for command in ("show", "preview", "explain"):
        result = cli("segments", command, "nosuch")
        assert result.code == 2
        assert "no segment named 'nosuch' (segments: big_spenders, churn_risk," in result.stderr


def test_log_shows_the_newest_rows_up_to_limit_and_says_how_many_more(demo, cli):
    assert cli("run").code == 0
    everything = json.loads(cli("log", "--json", "--limit", "100000").stdout)
    total = len(everything)
    assert total > 10
    assert len(json.loads(cli("log", "--json").stdout)) == min(total, 50)  # default 50
    shown = cli("log", "--limit", "10")
    assert shown.code == 0
    assert f"{total - 10:,} more rows (older); show them with --limit {total}" in shown.stdout
    assert json.loads(cli("log", "--json", "--limit", "3").stdout) == everything[:3]


def test_version_prints_and_exits_0(cli):
    result = cli("--version")
    assert result.code == 0
    assert result.stdout.startswith("segsync ")


@pytest.mark.parametrize("command", [("status",), ("log",), ("plan",), ("segments", "list")])
def test_no_config_is_the_same_clear_error_as_a_missing_named_one(tmp_path, cli, command):
    missing = cli(*command)
    assert missing.code == 2
    assert "segsync.toml: config file not found" in missing.stderr
    named = cli("--config", "nope.toml", *command)
    assert named.code == 2 and "nope.toml: config file not found" in named.stderr
    assert not (tmp_path / "segsync.db").exists()


def _commands(help_text: str) -> list[str]:
    listing = help_text.split("Commands:", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ")
            and not line.startswith("   ")]


def test_every_command_has_a_whole_one_line_help_and_an_example(demo, cli):
    root = cli("--help")
    assert root.code == 0
    listed = root.stdout.split("Commands:", 1)[1]
    assert "..." not in listed
    commands = _commands(root.stdout)
    assert {"run", "plan", "log", "segments", "model"} <= set(commands)
    for command in commands:
        text = cli(command, "--help").stdout
        if "Commands:" in text:  # a group: its subcommands, each with an example
            assert "..." not in text.split("Commands:", 1)[1], command
            for sub in _commands(text):
                sub_text = cli(command, sub, "--help").stdout
                assert f"Example:\n    segsync {command} {sub}" in sub_text, (command, sub)
        else:
            assert f"Example:\n    segsync {command}" in text, command


def test_a_run_with_rejected_rows_exits_0_but_ends_on_a_line_naming_them(demo, cli):
    result = cli("run")
    assert result.code == 0
    last = " ".join(result.stdout.split("REJECTED:", 1)[1].split())  # rich may wrap it
    assert result.stdout.rstrip().endswith(last.split()[-1])  # the summary's last line
    assert last == ("27 rows were not imported (27 in square_sales); list them with: "
                    "segsync status --rejects --source square_sales --limit 27")
    listed = json.loads(cli("status", "--json", "--rejects", "--source", "square_sales",
                            "--limit", "27").stdout)["rejects"]
    assert len(listed) == 27 and {r["source"] for r in listed} == {"square_sales"}
    assert cli("status", "--rejects", "--source", "nosuch").code == 2
    # Said once: no second, older warning after it on stderr; with --json (no REJECTED line
    # on stdout) the warning is what a person sees.
    assert "rows rejected" not in result.stderr
    assert "27 rows rejected" in cli("pull", "--full-refresh", "--json").stderr


CONSENT_KEYS = ["eligible", "no_address", "unsubscribed", "not_opted_in", "duplicate"]


def test_run_and_plan_report_consent_in_words_with_stable_json_keys(demo, cli):
    ran = cli("run", "--json")
    assert ran.code == 0
    summary = json.loads(ran.stdout)
    for s in summary["syncs"]:
        segment = json.loads(ran.stdout)["segments"]
        assert sorted(s["consent"]) == sorted(CONSENT_KEYS)
        sync_segment = {"lapsed_winback": "lapsed", "mystery_newsletter": "mystery_readers",
                        "vip_list": "top_spenders", "new_customer_welcome": "new_customers",
                        "fading_sms": "fading_regulars"}[s["sync"]]
        assert sum(s["consent"].values()) == segment[sync_segment]  # every member, once
        assert s["consent"]["eligible"] == s["desired"]
    by_sync = {s["sync"]: s["consent"] for s in summary["syncs"]}
    # the demo's SMS sync: 11 fading regulars, 2 with SMS consent; the email newsletter holds
    # out opted-out readers apart from those who never opted in
    assert by_sync["fading_sms"] == {"eligible": 2, "not_opted_in": 9, "unsubscribed": 0,
                                     "no_address": 0, "duplicate": 0}
    assert by_sync["mystery_newsletter"]["unsubscribed"] == 6
    assert by_sync["mystery_newsletter"]["no_address"] == 5

    text = cli("run", "--no-pull").stdout
    assert "invalid" not in text
    assert "not opted in" in text and "unsubscribed/suppressed" in text
    assert "no valid email/phone" in text
    planned = json.loads(cli("plan", "--json").stdout)
    assert {s["sync"]: s["consent"] for s in planned["syncs"]} == by_sync
    plan_text = cli("plan", "--sync", "fading_sms").stdout
    assert "consent: 2 eligible, 9 not opted in, 0 unsubscribed/suppressed, " \
        "0 no valid email/phone, 0 duplicate address" in plan_text


def test_readme_documents_the_consent_keys_and_shows_the_demos_real_summary(demo, cli):
    from conftest import REPO

    from segsync.core.cli.run import CONSENT_KEYS as SHOWN

    readme = (REPO / "README.md").read_text()
    for key in SHOWN:
        assert f"`{key}`" in readme, key
    ran = cli("run")
    rows = [line for line in ran.stdout.splitlines() if line.startswith("│ fading_sms ")
            and "│ 2        │ 9 " in line]
    assert rows and rows[-1] in readme
    rejected = [line for line in ran.stdout.splitlines() if line.startswith("REJECTED:")]
    assert rejected[0].replace("segsync status", "segsync --config config.example.toml status") \
        in readme


def test_log_still_answers_for_a_sync_removed_from_the_config_after_it_ran(demo, cli):
    assert cli("run").code == 0
    config = demo / "segsync.toml"
    text = config.read_text()
    start = text.index("[syncs.vip_list]")
    config.write_text(text[:start] + text[text.index("[syncs.new_customer_welcome]"):])
    result = cli("log", "--sync", "vip_list", "--json")
    assert result.code == 0, result.stderr
    assert {r["sync"] for r in json.loads(result.stdout)} == {"vip_list"}


@pytest.mark.parametrize("width", [80, 100, 200])
def test_tables_never_cut_a_name_or_a_number_on_a_narrow_terminal(demo, cli, monkeypatch,
                                                                  width):
    from segsync.core.cli import output

    monkeypatch.setattr(output.out, "width", width)
    result = cli("run")
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout
    # (the REJECTED line stays one line on purpose: it ends on a command to copy)
    assert max(len(line) for line in result.stdout.splitlines()
               if not line.startswith("REJECTED:")) <= width
    consent = json.loads(cli("plan", "--json").stdout)["syncs"]
    fading = next(s["consent"] for s in consent if s["sync"] == "fading_sms")
    if width < 120:  # the consent table does not fit: one line per sync instead
        assert (f"fading_sms: eligible {fading['eligible']}, not opted in "
                f"{fading['not_opted_in']}, unsubscribed/suppressed") in result.stdout
    else:
        assert "┃ sync                 ┃ eligible ┃ not opted in ┃" in result.stdout
