"""A run stopped from outside: SIGTERM closes its ``runs`` row, SIGKILL's row is closed later.

Schedulers stop a job that runs too long: cron wrappers and systemd with SIGTERM, Kubernetes
with SIGTERM and then SIGKILL. The real CLI runs in a child process, syncing to a destination
that accepts the connection and never answers, so the run is waiting on an HTTP answer when
the signal comes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.webhook import WebhookFake
from helpers_one_sync import write_one_sync_config


@pytest.fixture
def silent_service() -> Iterator[tuple[str, threading.Event]]:
    """An HTTP address that accepts connections and never answers; the event is set on the
    first connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connected
    listener.close()
    for conn in held:
        conn.close()


def write_config(folder: Path, url: str) -> Path:
    return write_one_sync_config(folder, url, 'api_key = "pk_test"\ntimeout = 120')


def segsync(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "segsync.core", "--config", str(config), *args],
        cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def runs(config: Path) -> list[tuple[str, str, str | None, int | None]]:
    with sqlite3.connect(config.parent / "segsync.db") as conn:
        return conn.execute("SELECT command, status, finished_at, exit_code FROM runs "
                            "ORDER BY id").fetchall()


def stopped_mid_push(config: Path, connected: threading.Event, sig: int,
                     env: dict[str, str] | None = None) -> tuple[int, str]:
    child = segsync(config, "run", env=env)
    try:
        assert connected.wait(60), "the run never reached the destination"
        time.sleep(0.2)  # inside the HTTP read, not between calls
        os.kill(child.pid, sig)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    return child.returncode, stderr


def test_sigterm_closes_the_run_as_interrupted_and_frees_the_lock(tmp_path, silent_service):
    url, connected = silent_service
    config = write_config(tmp_path, url)

    with WebhookFake() as hook:
        code, stderr = stopped_mid_push(config, connected, signal.SIGTERM,
                                        env={"SEGSYNC_ALERTS__WEBHOOK_URL": hook.url})
    # Nobody is watching a scheduler's timeout: the alert says the run stopped, and why.
    [alert] = hook.accepted
    assert "failed (exit 1)" in alert["text"] and "stopped by SIGTERM" in json.dumps(alert)

    assert code == 1
    assert "stopped by SIGTERM" in stderr
    assert "Traceback" not in stderr
    [(command, status, finished_at, exit_code)] = runs(config)
    assert (command, status, exit_code) == ("run", "interrupted", 1)
    assert finished_at is not None
    # The lock went with the process: the next command that takes it runs at once.
    pull = segsync(config, "pull")
    assert pull.wait(60) == 0, pull.communicate()
    assert [r[1] for r in runs(config)] == ["interrupted", "ok"]


def test_a_killed_runs_row_is_closed_by_the_next_run(tmp_path, silent_service):
    url, connected = silent_service
    config = write_config(tmp_path, url)

    code, _ = stopped_mid_push(config, connected, signal.SIGKILL)

    assert code == -signal.SIGKILL
    assert [r[1] for r in runs(config)] == ["running"]  # nothing could close it
    pull = segsync(config, "pull")
    assert pull.wait(60) == 0, pull.communicate()
    assert [(r[1], r[2] is None) for r in runs(config)] == [("killed", True), ("ok", False)]


def test_ctrl_c_is_recorded_the_same_but_alerts_nobody(tmp_path, silent_service):
    url, connected = silent_service
    config = write_config(tmp_path, url)

    with WebhookFake() as hook:
        code, stderr = stopped_mid_push(config, connected, signal.SIGINT,
                                        env={"SEGSYNC_ALERTS__WEBHOOK_URL": hook.url})
    assert hook.requests == []  # a person stopped it and is looking at the terminal
    assert code == 1 and "interrupted (Ctrl-C)" in stderr
    assert [r[1] for r in runs(config)] == ["interrupted"]
