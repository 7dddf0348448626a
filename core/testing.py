"""Test helpers for connector authors and for segsync's own tests (a pytest plugin).

Installed as the ``segsync`` pytest plugin (entry point ``pytest11``), so any test suite with
segsync installed gets the ``memory_destination`` fixture; import the rest from here.

* :class:`MemoryDestination`: a strict in-memory destination. It applies changes like a real
  membership API (idempotent upserts and removes) and can fail on cue the ways real ones do:
  a transient error before anything is applied, a transient error *after* the write landed (a
  timeout the caller cannot tell from a failure), a whole-batch fatal error, a bad request
  caused by one record, and per-record rejections or transient failures. It counts calls,
  batch sizes and the most calls ever in flight, and it raises ``AssertionError`` when the
  engine breaks the contract (a batch over ``max_batch``, more calls in flight than
  ``max_concurrency``, a remove it cannot do, an opted-out person added), so an engine bug
  fails the test instead of being "handled" like an API error.
* :class:`DestinationContract`: checks every destination must pass. Subclass it as
  ``TestMyDestination`` and provide a ``destination`` fixture that returns a fresh instance.
* :class:`SyncHarness`: an in-memory store with people and one segment, driving the real
  plan → push loop against any destination, for end-to-end connector tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field
from sqlite_utils import Database

from .connector import (
    Capabilities,
    Change,
    ConnectorConfig,
    Destination,
    IdentityKind,
    Outcome,
    Target,
)
from .errors import FatalError, RetriableError
from .measure import ATTRIBUTES
from .retry import NO_WAIT, RetryPolicy
from .settings import SyncSettings
from .store import open_store
from .sync import OPTED_OUT, Plan, SyncResult, plan_sync, push

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")

FaultKind = Literal["before", "after", "fatal", "bad_request"]


@dataclass(frozen=True)
class Fault:
    """One injected failure for one ``apply`` call.

    ``before``: RetriableError, nothing applied. ``after``: the batch is applied, then a
    RetriableError (a timeout after the write). ``fatal``: FatalError with no status, nothing
    applied. ``bad_request``: FatalError with ``status`` 400, nothing applied.
    """

    kind: FaultKind
    retry_after: float | None = None


class MemoryConfig(ConnectorConfig):
    """Capabilities of the fake, so tests can shape it like any real destination."""

    identity: IdentityKind = "email"
    max_batch: int = Field(100, ge=1)
    max_concurrency: int = Field(1, ge=1)
    can_remove: bool = True
    #: Fields it accepts; ``"*"`` means any.
    fields: tuple[str, ...] = ("*",)
    #: Seconds each ``apply`` takes, to make concurrency observable.
    latency: float = Field(0.0, ge=0)


class MemoryDestination(Destination):
    """A strict, thread-safe, in-memory membership destination with failure injection.

    Build it with keyword options (``MemoryDestination(max_batch=2, max_concurrency=3)``) or
    through config as ``type = "memory"``. Inspect ``members_of(name)``/``state(name)`` and the
    counters; script failures with :meth:`fail`, :meth:`script`, :meth:`reject`,
    :meth:`fail_records` and :meth:`poison`; set ``before_apply`` to observe each call (it runs
    in the worker thread, before anything is applied).
    """

    type_name = "memory"
    Config = MemoryConfig

    def __init__(
        self,
        name: str = "memory",
        config: MemoryConfig | None = None,
        base_dir: Path | None = None,
        **options: Any,
    ):
        super().__init__(name, config or MemoryConfig(**options), base_dir or Path.cwd())
        self.config: MemoryConfig
        self._lock = threading.Lock()
        self.targets: dict[str, Target] = {}
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.ensure_calls = 0
        self.targets_created = 0
        self.apply_calls = 0
        self.batch_sizes: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: deque[Fault | None] = deque()
        self.rejections: dict[str, str] = {}
        self.flaky: dict[str, int] = {}
        self.poisoned: set[str] = set()
        self.before_apply: Callable[[Target, Sequence[Change]], None] | None = None

    @property
    def capabilities(self) -> Capabilities:
        c = self.config
        return Capabilities(
            identity=c.identity,
            max_batch=c.max_batch,
            max_concurrency=c.max_concurrency,
            can_remove=c.can_remove,
            container="list",
            fields=c.fields,
        )

    # -- failure injection ------------------------------------------------------------------

    def fail(self, kind: FaultKind, times: int = 1, retry_after: float | None = None) -> None:
        """Make the next ``times`` apply calls fail with ``kind`` (see :class:`Fault`)."""
        self.faults.extend(Fault(kind, retry_after) for _ in range(times))

    def script(self, faults: Iterable[FaultKind | None]) -> None:
        """Queue one entry per coming apply call: a fault kind, or None for a clean call."""
        self.faults.extend(Fault(kind) if kind else None for kind in faults)

    def reject(self, *keys: str, reason: str = "refused by the destination") -> None:
        """Refuse these keys for good, per record, until :meth:`accept`."""
        self.rejections.update(dict.fromkeys(keys, reason))

    def accept(self, *keys: str) -> None:
        for key in keys:
            self.rejections.pop(key, None)

    def fail_records(self, *keys: str, times: int = 1) -> None:
        """Answer ``failed`` (transient, not applied) for these keys in the next ``times``
        calls that carry them."""
        self.flaky.update(dict.fromkeys(keys, times))

    def poison(self, *keys: str) -> None:
        """Fail any call carrying one of these keys as a whole with a 400, like an API that
        refuses the batch for one bad record; nothing in that call is applied."""
        self.poisoned.update(keys)

    # -- the contract -------------------------------------------------------------------------

    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        with self._lock:
            self.ensure_calls += 1
            target = self.targets.get(name)
            if target is None:
                self.targets_created += 1
                target = Target(name, f"mem-{self.targets_created}", dict(options))
                self.targets[name] = target
                self.data[name] = {}
            return Target(target.name, target.remote_id, dict(target.options))

    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        # Counters and the fault queue are shared by the executor's worker threads.
        with self._lock:
            self.apply_calls += 1
            self.batch_sizes.append(len(changes))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            in_flight = self.in_flight
            fault = self.faults.popleft() if self.faults else None
        try:
            self._check(target, changes, in_flight)
            if self.before_apply is not None:
                self.before_apply(target, changes)
            if self.config.latency:
                time.sleep(self.config.latency)
            if fault is not None and fault.kind == "before":
                raise RetriableError("injected 503 before apply", retry_after=fault.retry_after)
            if fault is not None and fault.kind == "fatal":
                raise FatalError("injected 401: bad credentials")
            if fault is not None and fault.kind == "bad_request":
                raise FatalError("injected 400: bad request", status=400)
            bad = sorted(self.poisoned.intersection(c.key for c in changes))
            if bad:
                raise FatalError(f"400: invalid record {bad[0]}", status=400)
            with self._lock:
                outcomes = [self._apply_one(target.name, change) for change in changes]
            # The write has landed; the caller still sees an error, as after a timeout.
            if fault is not None and fault.kind == "after":
                raise RetriableError("injected timeout after the write was applied",
                                     retry_after=fault.retry_after)
            return outcomes
        finally:
            with self._lock:
                self.in_flight -= 1

    def _apply_one(self, target: str, change: Change) -> Outcome:
        if change.key in self.rejections:
            return Outcome(change.key, "rejected", self.rejections[change.key])
        if self.flaky.get(change.key, 0) > 0:
            self.flaky[change.key] -= 1
            return Outcome(change.key, "failed", "injected transient record failure")
        members = self.data[target]
        if change.op == "remove":
            members.pop(change.key, None)
        else:
            members[change.key] = dict(change.fields)
        return Outcome(change.key, "ok")

    def _check(self, target: Target, changes: Sequence[Change], in_flight: int) -> None:
        caps = self.capabilities
        known = self.targets.get(target.name)
        assert known is not None and known.remote_id == target.remote_id, (
            f"apply on target {target.name!r}, which ensure_target never returned"
        )
        assert len(changes) <= caps.max_batch, (
            f"batch of {len(changes)} exceeds max_batch {caps.max_batch}"
        )
        assert in_flight <= caps.max_concurrency, (
            f"{in_flight} calls in flight exceed max_concurrency {caps.max_concurrency}"
        )
        keys = [c.key for c in changes]
        assert len(set(keys)) == len(keys), f"duplicate keys in one batch: {keys}"
        for change in changes:
            if caps.identity == "email":
                assert "@" in change.key, f"not an email: {change.key!r}"
            else:
                assert _E164.fullmatch(change.key), f"not an E.164 phone: {change.key!r}"
            if change.op == "remove":
                assert caps.can_remove, "remove sent to a destination that cannot remove"
                continue
            assert change.consent not in OPTED_OUT, (
                f"consent gate broken: {change.op} of {change.key} with consent {change.consent}"
            )
            if "*" not in caps.fields:
                unknown = set(change.fields) - set(caps.fields)
                assert not unknown, f"fields the destination does not have: {sorted(unknown)}"

    def members(self, target: Target) -> list[str]:
        with self._lock:
            return sorted(self.data.get(target.name, {}))

    # -- inspection ---------------------------------------------------------------------------

    def state(self, name: str) -> dict[str, dict[str, Any]]:
        """A copy of target ``name``: key → fields (empty when it was never created)."""
        with self._lock:
            return {k: dict(v) for k, v in self.data.get(name, {}).items()}

    def members_of(self, name: str) -> set[str]:
        return set(self.state(name))


@pytest.fixture
def memory_destination() -> MemoryDestination:
    """A fresh :class:`MemoryDestination` with default capabilities."""
    return MemoryDestination()


class DestinationContract:
    """The basic contract every destination must keep, as tests to inherit.

    Provide a ``destination`` fixture returning a fresh destination whose target can be created
    and written. Override ``contract_keys`` when your fake only accepts certain addresses.
    """

    target_name = "segsync-contract"

    @pytest.fixture
    def contract_keys(self, destination: Destination) -> list[str]:
        if destination.capabilities.identity == "phone":
            return ["+15005550001", "+15005550002", "+15005550003"]
        return ["contract-1@segsync.test", "contract-2@segsync.test", "contract-3@segsync.test"]

    def _adds(self, destination: Destination, keys: list[str]) -> list[Change]:
        fields = destination.capabilities.fields
        name = "first_name" if "*" in fields else (fields[0] if fields else None)
        payload = {name: "Ada"} if name else {}
        return [Change(key, "add", fields=dict(payload), consent="SUBSCRIBED") for key in keys]

    def test_capabilities_are_usable(self, destination: Destination) -> None:
        caps = destination.capabilities
        assert caps.identity in ("email", "phone")
        assert caps.max_batch >= 1
        assert caps.max_concurrency >= 1

    def test_ensure_target_is_idempotent(self, destination: Destination) -> None:
        first = destination.ensure_target(self.target_name, {})
        second = destination.ensure_target(self.target_name, {})
        assert first.name == second.name == self.target_name
        assert first.remote_id == second.remote_id, "ensure_target created a second target"

    def test_apply_returns_one_outcome_per_change(
        self, destination: Destination, contract_keys: list[str]
    ) -> None:
        target = destination.ensure_target(self.target_name, {})
        outcomes = destination.apply(target, self._adds(destination, contract_keys))
        assert sorted(o.key for o in outcomes) == sorted(contract_keys)
        assert all(o.status in ("ok", "rejected", "failed") for o in outcomes)

    def test_reapplying_a_batch_converges(
        self, destination: Destination, contract_keys: list[str]
    ) -> None:
        target = destination.ensure_target(self.target_name, {})
        batch = self._adds(destination, contract_keys)
        destination.apply(target, batch)
        again = destination.apply(target, batch)
        assert [o.status for o in again] == ["ok"] * len(batch)
        members = destination.members(target)
        if members is not None:
            members = list(members)
            assert sorted(members) == sorted(contract_keys), "replaying a batch duplicated"

    def test_remove_is_idempotent(
        self, destination: Destination, contract_keys: list[str]
    ) -> None:
        if not destination.capabilities.can_remove:
            pytest.skip("the destination cannot remove")
        target = destination.ensure_target(self.target_name, {})
        destination.apply(target, self._adds(destination, contract_keys))
        removal = [Change(contract_keys[0], "remove")]
        assert [o.status for o in destination.apply(target, removal)] == ["ok"]
        assert [o.status for o in destination.apply(target, removal)] == ["ok"]
        members = destination.members(target)
        if members is not None:
            assert sorted(members) == sorted(contract_keys[1:])


_SQL_TYPES = {"integer": "INTEGER", "float": "REAL", "boolean": "INTEGER"}


class SyncHarness:
    """A store holding ``person_features`` and one segment, and the engine's plan → push loop.

    ``person_features`` gets every column of the attribute catalog plus ``attributes`` (JSON),
    as the features stage builds it. Each :meth:`run` is a new run id; ``retry`` defaults to a
    policy that never sleeps. ``db`` defaults to a fresh in-memory store.
    """

    def __init__(
        self,
        destination: Destination,
        sync: SyncSettings | None = None,
        *,
        name: str = "sync",
        retry: RetryPolicy = NO_WAIT,
        db: Database | None = None,
    ):
        self.db = db if db is not None else open_store(":memory:")
        self.destination = destination
        self.sync = sync or SyncSettings(segment="vip", destination=destination.name)
        self.name = name
        self.retry = retry
        self.run_id = 0
        columns = ", ".join(
            f"{a.sql_column} {_SQL_TYPES.get(a.type, 'TEXT')}"
            for a in ATTRIBUTES
            if a.sql_column != "person_id"
        )
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS person_features (person_id INTEGER PRIMARY KEY, "
            f"{columns}, attributes TEXT NOT NULL DEFAULT '{{}}')"
        )

    def person(self, person_id: int, *, member: bool = True, **features: Any) -> None:
        """Create or replace a person's features (``email``, ``email_subscription_status``,
        …) and put them in the segment unless ``member`` is false."""
        row = {"person_id": person_id, **features}
        self.db["person_features"].upsert(row, pk="person_id")
        if member:
            self.join(person_id)
        else:
            self.leave(person_id)

    def update(self, person_id: int, **features: Any) -> None:
        """Change some features of an existing person."""
        self.db["person_features"].update(person_id, features)

    def join(self, *person_ids: int) -> None:
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO segment_members (segment, person_id) VALUES (?, ?)",
            [(self.sync.segment, pid) for pid in person_ids],
        )
        self.db.conn.commit()

    def leave(self, *person_ids: int) -> None:
        self.db.conn.executemany(
            "DELETE FROM segment_members WHERE segment = ? AND person_id = ?",
            [(self.sync.segment, pid) for pid in person_ids],
        )
        self.db.conn.commit()

    def plan(self, **guardrails: Any) -> Plan:
        """Plan the sync; ``guardrails`` are :func:`~segsync.core.sync.plan.plan_sync` options."""
        return plan_sync(self.db, self.name, self.sync, self.destination, **guardrails)

    def run(self, **guardrails: Any) -> SyncResult:
        """Plan and push once, as ``segsync run`` does for one sync."""
        self.run_id += 1
        with self.plan(**guardrails) as plan:
            return push(self.db, plan, self.destination, self.run_id, retry=self.retry)

    def baseline(self) -> dict[str, str | None]:
        """The acknowledged baseline: key → payload JSON."""
        return dict(
            self.db.execute(
                "SELECT key, payload FROM sync_state WHERE sync = ?", [self.name]
            ).fetchall()
        )

    def outcomes(self) -> dict[str, tuple[str, str, str | None]]:
        """Unconfirmed attempts: key → (op, status, reason)."""
        return {
            key: (op, status, reason)
            for key, op, status, reason in self.db.execute(
                "SELECT key, op, status, reason FROM sync_outcomes WHERE sync = ?", [self.name]
            ).fetchall()
        }
