"""The connector contract: what a source or a destination must provide.

A connector is a class registered through the ``register_sources`` / ``register_destinations``
hooks (see :mod:`segsync.plugins.hookspecs`). Its ``Config`` pydantic model validates its
``[sources.NAME]`` / ``[destinations.NAME]`` table; segsync builds one instance per table.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .records import Record


class ConnectorConfig(BaseModel):
    """Base for connector config models: unknown keys are errors, so typos surface at once.

    Defaults are validated too, so a default ``ConfigPath`` is resolved against the config
    file's folder like a written one.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    #: The connector type; defaults to the table's name (``[sources.pos_csv]``).
    type: str | None = None


@dataclass
class PullState:
    """What a source is told when a pull starts, and what it may ask the store."""

    cursors: dict[str, str]
    full_refresh: bool
    timezone: str
    default_region: str
    #: Content hashes (sha256 hex) of files this source has already imported.
    seen_files: frozenset[str] = frozenset()
    #: Whether the consumer takes :class:`~segsync.core.records.StagedFile` offers (the
    #: store's writer does); a source offers them only then.
    staged: bool = False


class Source(abc.ABC):
    """A source of customers and orders.

    Subclasses set ``type_name``, ``Config`` and ``streams``, and implement :meth:`pull`.
    ``pull`` yields :mod:`segsync.core.records` objects in any order; the store writes them in
    batches and stores a :class:`~segsync.core.records.Cursor` only after every record yielded
    before it is written, so a source that yields its cursor after each page is resumable.

    Optional bulk capability: when ``state.staged``, instead of a file's records a source may
    yield a :class:`~segsync.core.records.StagedFile` whose loader fills the store's staging
    table (:mod:`segsync.core.ingest.staged`); the store then normalises and upserts the whole file
    set-wise. If the offer comes back with no ``result`` the source yields the records instead,
    so a staged path never has to cover every shape of input (``pos_csv`` offers one for
    orders files with one row per order id).
    """

    type_name: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]]
    #: Stream names this source can yield, e.g. ``("customers", "orders")``.
    streams: ClassVar[tuple[str, ...]] = ("customers", "orders")

    def __init__(self, name: str, config: ConnectorConfig, base_dir: Path):
        self.name = name
        self.config = config
        self.base_dir = base_dir

    def check(self) -> list[str]:
        """Validate credentials and reachability; return notes to show the user.

        Raise :class:`~segsync.core.errors.SegsyncError` subclasses for problems.
        """
        return []

    @abc.abstractmethod
    def pull(self, state: PullState) -> Iterator[Record]:
        """Yield canonical records (and rejects, cursors, files seen) since ``state``."""

    def close(self) -> None:
        """Release connections; called once after the pull, even when it failed."""


#: A destination's identity for a person: their email, or their phone in E.164.
IdentityKind = Literal["email", "phone"]


#: In :attr:`Capabilities.fields`: the destination accepts any field name (files, webhooks).
ANY_FIELD = "*"


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do, which the planner and executor obey.

    ``max_batch`` bounds the changes in one :meth:`Destination.apply` call, ``max_concurrency``
    the calls in flight at once for one account. ``fields`` are the profile fields it can sync
    (``first_name``, ``last_name``, …); an empty tuple means membership only, and ``("*",)``
    any field name (:data:`ANY_FIELD`: files, webhooks).
    """

    identity: IdentityKind
    max_batch: int
    max_concurrency: int = 1
    can_remove: bool = True
    container: Literal["tag", "static_segment", "list", "file"] = "list"
    fields: tuple[str, ...] = ()


@dataclass
class Change:
    """One planned change for one person at one target.

    ``op`` is ``add`` (join the target, with fields), ``update`` (already a member, synced fields
    changed) or ``remove`` (leave the target). ``consent`` is the person's consent state for the
    destination's channel, for destinations that set a status on new contacts.
    """

    key: str
    op: Literal["add", "update", "remove"]
    person_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    consent: str | None = None


@dataclass
class Outcome:
    """A destination's answer for one change.

    ``ok``: applied and confirmed. ``rejected``: the destination refused this record for good
    (compliance state, invalid address); not retried until the record changes. ``failed``: a
    transient failure; the change stays in the next plan.
    """

    key: str
    status: Literal["ok", "rejected", "failed"]
    reason: str | None = None


@dataclass
class Target:
    """A resolved membership container (tag, list, segment or file) at a destination."""

    name: str
    remote_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Destination(abc.ABC):
    """A place segment membership is pushed to.

    Implementations must make every write idempotent (set membership, upsert by key) and must
    never change a contact's subscription status beyond what the consent rules allow.
    """

    type_name: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]]

    def __init__(self, name: str, config: ConnectorConfig, base_dir: Path):
        self.name = name
        self.config = config
        self.base_dir = base_dir

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """The limits and identity kind the engine plans for."""

    def check(self) -> list[str]:
        """Validate credentials and reachability; return notes to show the user."""
        return []

    @abc.abstractmethod
    def ensure_target(self, name: str, options: dict[str, Any]) -> Target:
        """Find the container called ``name`` or create it; never create a second one."""

    @abc.abstractmethod
    def apply(self, target: Target, changes: Sequence[Change]) -> list[Outcome]:
        """Apply one batch and return one outcome per change, in any order.

        Raise :class:`~segsync.core.errors.RetriableError` when the whole batch failed
        transiently and :class:`~segsync.core.errors.FatalError` when it cannot succeed.
        """

    def members(self, target: Target) -> Iterable[str] | None:
        """The keys currently in ``target`` at the destination, for ``--reconcile``.

        ``None`` means the destination cannot list members.
        """
        return None

    def close(self) -> None:
        """Release connections; called once at the end of a run."""
