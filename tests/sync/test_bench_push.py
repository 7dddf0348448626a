"""bench/bench_push.py keeps running: a tiny smoke run of every cell and scenario."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_push.py"


def test_bench_push_runs_every_latency_and_concurrency(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_push", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)
    code = bench.main(["--people", "300", "--batch", "50", "--latency", "0", "0.001",
                       "--concurrency", "1", "3", "--leave", "0.1"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[3:-1]]
    assert {(row[0], row[1], row[2]) for row in rows} == {
        (lat, scenario, conc)
        for lat in ("0.000", "0.001") for scenario in ("full", "quiet", "leave")
        for conc in ("1", "3")
    }
    # Calls at the minimum on every cell, none on a quiet run; wall time is not asserted here.
    assert all(row[4] == row[5] for row in rows)
    assert "calls on no-change runs 0" in out.splitlines()[-1]
    assert code in (0, 1)
