"""Shared fixtures: an isolated environment per test and a way to run the real CLI in-process."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The project's shared real data (CDNOW), beside the repository in CI and development.
SHARED_DATA = REPO.parent / "shared" / "data"


def needs_shared_data(*parts: str) -> Path:
    """Path to a shared data file, skipping the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder, beside the repository)")
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No SEGSYNC_ variables and no installed third-party plugins leak into a test."""
    for key in list(os.environ):
        if key.startswith("SEGSYNC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SEGSYNC_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run ``segsync ARGS`` in-process through the real entry point."""
    from segsync.core.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def demo(tmp_path):
    """A copy of the example config (as ``segsync.toml``) and the demo exports in a scratch
    folder, which is the working directory: commands find the config without ``--config``."""
    shutil.copytree(REPO / "examples" / "exports", tmp_path / "examples" / "exports")
    shutil.copy(REPO / "config.example.toml", tmp_path / "segsync.toml")
    return tmp_path
