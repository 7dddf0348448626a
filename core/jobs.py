"""A ledger of a destination's asynchronous jobs, on disk, for resuming them after a crash.

Destinations get no database handle, and an async job's id exists only in the answer to the
request that started it. The ledger writes it atomically, keyed by a digest of that request,
before the job is polled: a replay of the same request after a timeout or a crash finds the id
and waits for that job instead of starting a second one, and the next run can wait for any job
a crashed run left behind before it sends newer data for the same contacts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .connector import ConnectorConfig
from .errors import ConfigError, FatalError
from .files import atomic_write
from .settings import ConfigPath


class JobDestinationConfig(ConnectorConfig):
    """The settings every destination with a :class:`JobLedger` shares: an HTTP API to talk to,
    a folder for the ledger, and how long to poll and wait. Subclasses give ``base_url`` its
    default."""

    #: Talk to this URL instead of the service's own (a proxy, or a test fake).
    base_url: str
    #: Folder of the small JSON file that remembers the destination's asynchronous jobs
    #: between runs (see the README); relative to the config file's folder.
    state_dir: ConfigPath = Path(".")
    #: Seconds between polls of a running job.
    poll_interval: float = Field(2.0, gt=0)
    #: Seconds to wait for a response.
    timeout: float = Field(30.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")


class JobLedger:
    """Job ids by request digest in one JSON file; safe to use from several threads."""

    def __init__(self, path: Path, service: str):
        self.path = path
        self.service = service
        self._lock = threading.Lock()

    @staticmethod
    def digest(body: Any) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._read()

    def find(self, digest: str) -> str | None:
        with self._lock:
            entry = self._read().get(digest)
        return entry["id"] if entry else None

    def record(self, digest: str, job_id: str) -> None:
        with self._lock:
            jobs = self._read()
            jobs[digest] = {"id": job_id, "submitted_at": dt.datetime.now(dt.UTC).isoformat()}
            self._write(jobs)

    def forget(self, digest: str) -> None:
        with self._lock:
            jobs = self._read()
            if jobs.pop(digest, None) is not None:
                self._write(jobs)

    def resume(self, wait: Callable[[str], object], ttl: dt.timedelta) -> None:
        """Wait for every job still in the ledger (``wait(job_id)``).

        Entries older than ``ttl`` are forgotten unwaited, and so are jobs the service no
        longer knows (``wait`` raises a :class:`FatalError` with status 404); any other error
        propagates. Finished jobs stay, for a replayed request to adopt until ``ttl``.
        """
        now = dt.datetime.now(dt.UTC)
        for digest, entry in self.entries().items():
            if now - dt.datetime.fromisoformat(entry["submitted_at"]) > ttl:
                self.forget(digest)
                continue
            try:
                wait(entry["id"])
            except FatalError as exc:
                if exc.status != 404:
                    raise
                self.forget(digest)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # Written atomically, so only a hand edit breaks it; guessing could lose a job id.
            raise ConfigError(f"{self.path}: not a segsync job ledger (invalid JSON); "
                              f"delete it once no {self.service} job is running") from None
        return dict(data.get("jobs") or {})

    def _write(self, jobs: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.path, json.dumps({"version": 1, "jobs": jobs}, indent=1,
                                           sort_keys=True))
