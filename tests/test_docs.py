"""The docs stay true: the example config runs as written, the README lists what the code has."""

from __future__ import annotations

import tomllib

from conftest import REPO

from segsync.core.settings import Settings, build_connectors, load_settings
from segsync.core.templates import describe_templates
from segsync.plugins import load_plugins


def test_example_config_validates_with_every_connector():
    settings = load_settings(REPO / "config.example.toml")
    sources, destinations = build_connectors(settings, load_plugins())
    assert set(sources) == set(settings.sources) and sources
    assert set(destinations) == set(settings.destinations) and destinations


def test_example_config_sets_every_top_level_section():
    written = tomllib.loads((REPO / "config.example.toml").read_text())
    documented = set(Settings.model_fields) - {"config_path"}
    assert documented <= set(written), documented - set(written)


def test_every_scoring_setting_is_in_the_example():
    text = (REPO / "config.example.toml").read_text()
    missing = [name for name in Settings.model_fields["scoring"].annotation.model_fields
               if name not in text]
    assert missing == []


def test_readme_lists_every_template_with_its_expansion():
    readme = (REPO / "README.md").read_text()
    for template in describe_templates():
        assert f"| `{template['name']}` |" in readme, template["name"]
        assert template["query"].replace("|", "\\|") in readme, template["name"]
