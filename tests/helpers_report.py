"""The report tests' store: the demo with two runs a week apart, built once per module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from segsync.core.cli import main


def run_cli(*args: str) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


def build_demo_store(tmp_path_factory) -> Path:
    """The demo config and exports, run on 2026-11-01 and again on 2026-11-08."""
    folder = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "examples" / "exports", folder / "examples" / "exports")
    shutil.copy(REPO / "config.example.toml", folder / "segsync.toml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("SEGSYNC_LOAD_PLUGINS", "")
        for day in ("2026-11-01", "2026-11-08"):
            assert run_cli("run", "--as-of", day) in (0, 4)
    return folder


def cli_json(cli, *args: str):
    result = cli(*args, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)
