"""The import paths plugin authors rely on stay put; paths of moved modules warn, then work."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import pytest

#: What the plugin guide in the README names as stable.
STABLE = [
    ("segsync.core", ["Source", "Destination", "Customer", "Order", "ConnectorConfig",
                      "SegsyncError", "ConfigError", "FatalError", "RetriableError"]),
    ("segsync.core.connector", ["Source", "Destination", "Capabilities", "Change", "Outcome",
                                "Target", "PullState", "ConnectorConfig", "ANY_FIELD"]),
    ("segsync.core.records", ["Customer", "Order", "OrderLine", "Rejected", "Cursor",
                              "FileSeen", "Consent"]),
    ("segsync.core.errors", ["SegsyncError", "ConfigError", "ConnectorError", "SourceError",
                             "FatalError", "RetriableError", "PluginError", "QueryError"]),
    ("segsync.core.testing", ["DestinationContract", "MemoryDestination", "SyncHarness"]),
    ("segsync.core.http", ["make_client", "raise_for_status", "send", "json_object"]),
    ("segsync.core.retry", ["RetryPolicy", "NO_WAIT"]),
    ("segsync.core.jobs", ["JobLedger", "JobDestinationConfig"]),
    ("segsync.core.files", ["atomic_write"]),
    ("segsync.plugins", ["hookimpl"]),
    ("segsync.plugins.hookspecs", ["register_sources", "register_destinations",
                                   "register_commands"]),
]


@pytest.mark.parametrize(("module", "names"), STABLE, ids=[m for m, _ in STABLE])
def test_stable_paths_import_without_warnings(module, names):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert missing == []


def test_moved_modules_warn_and_resolve_to_their_new_home():
    # A fresh interpreter, where no old name is cached yet as an alias.
    code = """
import importlib, json, sys, warnings
from segsync.core._moved import MOVED
problems = []
for old, new in sorted(MOVED.items()):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module("segsync.core." + old)
    if module is not importlib.import_module("segsync.core." + new):
        problems.append(old + ": not the new module")
    expected = f"segsync.core.{old} moved to segsync.core.{new}; import it from there"
    if [str(w.message) for w in caught if w.category is DeprecationWarning] != [expected]:
        problems.append(old + ": " + repr([str(w.message) for w in caught]))
print(json.dumps(problems))
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True)
    assert json.loads(done.stdout) == []


def test_the_shim_answers_only_for_moved_names():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("segsync.core.no_such_module")
