"""The wheel contains every package folder, and no test imports the bare folder names."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile

import pytest
from conftest import REPO

MAPPED = {"core": "segsync.core", "plugins": "segsync.plugins", "connectors": "segsync.connectors"}


def package_folders() -> set[str]:
    found = set()
    for folder, name in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    # setuptools silently leaves an unlisted mapped subpackage out of the wheel.
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    assert package_folders() == listed


def test_no_bare_folder_imports():
    # `python -m pytest` would make `import core` work by accident; the package is segsync.*.
    bare = re.compile(r"^\s*(from|import)\s+(core|plugins|connectors)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("core", "plugins", "connectors", "tests", "bench", "examples")
        for path in (REPO / folder).rglob("*.py")
        if bare.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.slow
def test_built_wheel_holds_every_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True,
    )
    wheel = next(tmp_path.glob("segsync-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {
        n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")
    }
    assert in_wheel == package_folders()
    assert "segsync/core/starter.toml" in names
    assert not any(n.startswith(("core/", "plugins/", "connectors/")) for n in names)
