"""The plugin system: every hook, the three ways plugins load, and loud failures."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from segsync.core import Capabilities, ConnectorConfig, Customer, Destination, Order, Source
from segsync.core.errors import PluginError
from segsync.plugins import DEFAULT_PLUGINS, extra_plugins, hookimpl, hookspecs, load_plugins


class TinyConfig(ConnectorConfig):
    people: int = 3


class TinySource(Source):
    type_name = "tiny"
    Config = TinyConfig

    def pull(self, state):
        for i in range(self.config.people):
            yield Customer(key=str(i), email=f"tiny{i}@example.com")
            yield Order(key=f"o{i}", customer_key=str(i), ordered_at=dt.datetime(2026, 2, 1),
                        total=5.0)


class TinyDestination(Destination):
    type_name = "tiny_dest"
    Config = ConnectorConfig

    @property
    def capabilities(self):
        return Capabilities(identity="email", max_batch=10)

    def ensure_target(self, name, options):
        raise AssertionError("not used")

    def apply(self, target, changes):
        raise AssertionError("not used")


class TinyPlugin:
    __name__ = "tiny-plugin"

    @hookimpl
    def register_sources(self, register):
        register(TinySource)

    @hookimpl
    def register_destinations(self, register):
        register(TinyDestination)

    @hookimpl
    def register_commands(self, app):
        @app.command()
        def tiny_hello():
            """Print a greeting."""
            print("tiny says hello")


def test_hook_register_sources():
    with extra_plugins(TinyPlugin()):
        plugins = load_plugins()
    assert plugins.source_class("tiny") is TinySource
    assert plugins.sources["tiny"].plugin == "tiny-plugin"


def test_hook_register_destinations():
    with extra_plugins(TinyPlugin()):
        plugins = load_plugins()
    assert plugins.destination_class("tiny_dest") is TinyDestination


def test_hook_register_commands(cli):
    with extra_plugins(TinyPlugin()):
        result = cli("tiny-hello")
    assert result.code == 0, result.stderr
    assert "tiny says hello" in result.stdout


def test_every_hook_has_a_test():
    names = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert names, "no hookspecs found"
    missing = [n for n in names if f"test_hook_{n}" not in globals()]
    assert missing == []


def test_every_hook_is_documented_in_readme():
    readme = (REPO / "README.md").read_text()
    for name in (n for n in dir(hookspecs) if n.startswith("register_")):
        import inspect

        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"{name}({args})" in readme, f"README lacks a section for {name}({args})"


def test_builtin_connectors_register_through_hooks():
    plugins = load_plugins()
    assert plugins.sources["pos_csv"].plugin == "pos_csv"
    assert plugins.destinations["csv_file"].plugin == "csv_file"
    described = {p["name"]: p for p in plugins.describe()}
    assert described["pos_csv"]["origin"] == "built-in"
    assert described["pos_csv"]["hooks"] == ["register_sources"]


def test_throwaway_plugin_source_is_used_by_pull(cli, tmp_path):
    (tmp_path / "segsync.toml").write_text('[sources.mine]\ntype = "tiny"\npeople = 4\n')
    with extra_plugins(TinyPlugin()):
        result = cli("pull", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sources"][0]["source"] == "mine"
    assert summary["sources"][0]["customers"] == 4
    assert summary["sources"][0]["orders"] == 4


def test_plugins_command_lists_hooks_and_connectors(cli):
    with extra_plugins(TinyPlugin()):
        result = cli("plugins", "--json")
    assert result.code == 0
    tiny = next(p for p in json.loads(result.stdout) if p["name"] == "tiny-plugin")
    assert tiny == {
        "name": "tiny-plugin",
        "origin": "registered in process",
        "hooks": ["register_commands", "register_destinations", "register_sources"],
        "sources": ["tiny"],
        "destinations": ["tiny_dest"],
    }


def test_local_plugin_file_in_plugin_dir_is_loaded(cli, tmp_path):
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "shop_notes.py").write_text(
        "from segsync.plugins import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(app):\n"
        "    @app.command()\n"
        "    def shop_notes():\n"
        "        print('local plugin here')\n"
    )
    (tmp_path / "segsync.toml").write_text('plugin_dirs = ["my_plugins"]\n')
    import os

    os.environ.pop("SEGSYNC_LOAD_PLUGINS")
    result = cli("shop-notes")
    assert result.code == 0, result.stderr
    assert "local plugin here" in result.stdout
    listed = json.loads(cli("plugins", "--json").stdout)
    assert any(p["name"] == "shop_notes" and p["origin"].startswith("file ") for p in listed)


def test_load_plugins_env_restricts_local_plugins(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    folder.mkdir()
    for name in ("one", "two"):
        (folder / f"{name}.py").write_text("x = 1\n")
    monkeypatch.setenv("SEGSYNC_LOAD_PLUGINS", "two")
    names = {p["name"] for p in load_plugins([folder]).describe()}
    assert "two" in names and "one" not in names
    monkeypatch.setenv("SEGSYNC_LOAD_PLUGINS", "")
    names = {p["name"] for p in load_plugins([folder]).describe()}
    assert names == {m.rsplit(".", 1)[-1] for m in DEFAULT_PLUGINS}


def test_hook_name_typo_fails_loudly(cli, tmp_path):
    class Typo:
        __name__ = "typo-plugin"

        @hookimpl
        def regster_sources(self, register):  # misspelled on purpose
            pass

    with extra_plugins(Typo()), pytest.raises(PluginError, match="typo-plugin.*regster_sources"):
        load_plugins()
    with extra_plugins(Typo()):
        result = cli("plugins")
    assert result.code == 2
    assert "regster_sources" in result.stderr


def test_duplicate_connector_names_name_both_plugins():
    class Again:
        __name__ = "again"

        @hookimpl
        def register_sources(self, register):
            register(TinySource)

    with extra_plugins(TinyPlugin(), Again()), pytest.raises(
        PluginError, match="'tiny' is registered by both"
    ):
        load_plugins()


def test_registering_a_non_connector_is_refused():
    class Wrong:
        __name__ = "wrong"

        @hookimpl
        def register_sources(self, register):
            register(dict)

    with extra_plugins(Wrong()), pytest.raises(PluginError, match="not a Source"):
        load_plugins()


@pytest.mark.slow
def test_installed_example_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch, cli):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
         "--target", str(target), str(REPO / "tests" / "example_plugin")],
        check=True,
    )
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.delenv("SEGSYNC_LOAD_PLUGINS")
    plugins = load_plugins()
    assert plugins.sources["example_static"].plugin == "example"
    described = {p["name"]: p for p in plugins.describe()}
    assert described["example"]["origin"] == "package segsync-example"
    assert cli("example-hello").stdout.strip() == "hello from segsync-example"
    # The allow-list can exclude it again.
    monkeypatch.setenv("SEGSYNC_LOAD_PLUGINS", "something-else")
    assert "example_static" not in load_plugins().sources


def test_plugin_dir_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(PluginError, match="plugin folder does not exist"):
        load_plugins([Path(tmp_path / "nope")])
