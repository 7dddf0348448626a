"""Config loading: TOML plus SEGSYNC_ environment, connector validation, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from segsync.core import ConnectorConfig, Source
from segsync.core.errors import ConfigError
from segsync.core.settings import ConfigPath, build_connectors, load_settings
from segsync.plugins import extra_plugins, hookimpl, load_plugins


class SecretConfig(ConnectorConfig):
    token: SecretStr
    folder: ConfigPath = Path("data")
    page_size: int = 100


class SecretSource(Source):
    type_name = "secretive"
    Config = SecretConfig

    def pull(self, state):
        return iter(())


class SecretPlugin:
    __name__ = "secret-plugin"

    @hookimpl
    def register_sources(self, register):
        register(SecretSource)


def write(tmp_path: Path, text: str, name: str = "segsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path):
    settings = load_settings()
    assert settings.store.path == tmp_path / "segsync.db"
    assert settings.guardrails.max_removal_share == 0.2
    assert settings.config_path is None


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    path = write(conf, '[store]\npath = "data/shop.db"\nplugin_dirs = []\n'.replace(
        "plugin_dirs = []\n", ""))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path)
    assert settings.store.path == conf / "data" / "shop.db"


def test_environment_overrides_nested_keys_and_keeps_siblings(tmp_path, monkeypatch):
    write(tmp_path, '[store]\ntimezone = "UTC"\ndefault_region = "GB"\n'
                    '[sources.shop]\ntype = "secretive"\ntoken = "from-file"\npage_size = 5\n')
    monkeypatch.setenv("SEGSYNC_STORE__TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("SEGSYNC_SOURCES__SHOP__TOKEN", "from-env")
    settings = load_settings()
    assert settings.store.timezone == "Europe/Paris"
    assert settings.store.default_region == "GB"
    with extra_plugins(SecretPlugin()):
        sources, _ = build_connectors(settings, load_plugins())
    shop = sources["shop"]
    assert shop.config.token.get_secret_value() == "from-env"
    assert shop.config.page_size == 5
    assert shop.config.folder == tmp_path / "data"


def test_secrets_are_never_printed(tmp_path, cli):
    write(tmp_path, '[sources.shop]\ntype = "secretive"\ntoken = "hunter2-very-secret"\n'
                    'page_size = "lots"\n')
    with extra_plugins(SecretPlugin()):
        result = cli("check")
    assert result.code == 2
    assert "hunter2" not in result.stdout + result.stderr
    assert "sources.shop.page_size" in result.stderr
    assert repr(SecretConfig(token="hunter2")).count("hunter2") == 0


def test_bad_config_gives_one_line_per_problem_and_exit_2(tmp_path, cli):
    path = write(tmp_path, '[store]\ntimezone = "Mars/Olympus"\ndefault_region = "XX"\n'
                           'colour = "blue"\n[guardrails]\nmax_removal_share = 3\n')
    result = cli("--config", path, "status")
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 4, result.stderr
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    joined = "\n".join(lines)
    assert "store.timezone: unknown time zone 'Mars/Olympus'" in joined
    assert "store.default_region: unknown phone region 'XX'" in joined
    assert "store.colour: unknown setting" in joined
    assert "guardrails.max_removal_share:" in joined


def test_connector_tables_are_validated_by_their_own_model(tmp_path):
    write(tmp_path, '[sources.a]\ntype = "secretive"\n'
                    '[sources.b]\ntype = "secretive"\ntoken = "x"\ntypo_key = 1\n'
                    '[sources.c]\ntype = "nonexistent"\n')
    settings = load_settings()
    with extra_plugins(SecretPlugin()), pytest.raises(ConfigError) as info:
        build_connectors(settings, load_plugins())
    problems = "\n".join(info.value.problems)
    assert "sources.a.token: Field required" in problems
    assert "sources.b.typo_key: unknown setting" in problems
    assert "sources.c: unknown connector type 'nonexistent'" in problems
    assert len(info.value.problems) == 3


def test_syncs_must_name_existing_segments_and_destinations(tmp_path):
    write(tmp_path, '[segments.vip]\nquery = "amount_spent > 100"\n'
                    '[syncs.s]\nsegment = "vpi"\ndestination = "files"\n')
    with pytest.raises(ConfigError, match="syncs.s.segment: no segment named 'vpi'"):
        load_settings()


def test_segment_needs_exactly_one_definition(tmp_path):
    write(tmp_path, '[segments.x]\nquery = "a"\nsql = "select 1"\n')
    with pytest.raises(ConfigError, match="segments.x: give exactly one of query, template or sql"):
        load_settings()


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[store\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid TOML"):
        load_settings()
