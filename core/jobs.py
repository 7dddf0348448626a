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
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .files import atomic_write


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
