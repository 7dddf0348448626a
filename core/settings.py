"""Configuration: one TOML file plus ``SEGSYNC_`` environment variables.

Loading happens in two steps because connectors come from plugins: first the file and the
environment are read into :class:`Settings` (connector tables still raw dicts), then, once the
plugins named by ``plugin_dirs`` are loaded, each ``[sources.NAME]`` / ``[destinations.NAME]``
table is validated by its connector's own ``Config`` model (:func:`build_sources`,
:func:`build_destinations`). Every problem found becomes one line naming the file and the key.

Relative paths in the file are relative to the file, so a config works from any directory.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .connector import ConnectorConfig, Destination, Source
from .errors import ConfigError

DEFAULT_CONFIG = Path("segsync.toml")

# The file being loaded; read by Settings.settings_customise_sources, which pydantic-settings
# calls as a classmethod with no way to pass arguments.
_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml", default=None)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


#: A path that, written relative, is relative to the config file.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Strict):
    """Where the database lives and how local dates and phones are read."""

    path: ConfigPath = Path("segsync.db")
    #: The shop's time zone: whole-day comparisons and naive timestamps use it.
    timezone: str = "UTC"
    #: Region for phone numbers written without a country code (ISO 3166 alpha-2).
    default_region: str = "US"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'America/New_York')") from None
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (use ISO codes such as 'US')")
        return value


class SegmentSettings(_Strict):
    """One segment: a query in the segment language, a template with parameters, or raw SQL."""

    description: str = ""
    query: str | None = None
    template: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    sql: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SegmentSettings:
        given = [k for k in ("query", "template", "sql") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of query, template or sql")
        return self


ConsentPolicy = Literal["subscribed", "subscribed_or_pending", "not_opted_out"]


class SyncSettings(_Strict):
    """One sync: a segment pushed to a target (tag, list, segment, file) at a destination."""

    segment: str
    destination: str
    #: The tag / list / file name at the destination; defaults to the segment's name.
    target: str | None = None
    #: Profile fields to keep in sync, as destination field → person feature.
    fields: dict[str, str] = Field(default_factory=dict)
    #: Who may be sent: ``subscribed`` (default), ``subscribed_or_pending``, or
    #: ``not_opted_out`` (anyone who has not unsubscribed, bounced or been redacted).
    consent: ConsentPolicy = "subscribed"
    #: Destination-specific options (tag vs static segment, status for new contacts, …).
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class GuardrailSettings(_Strict):
    """Limits that hold back dangerous pushes until an operator says yes."""

    #: Removals above this share of a target's current members are held.
    max_removal_share: float = Field(0.2, ge=0, le=1)


class AlertSettings(_Strict):
    """Where to tell someone that an unattended ``segsync run`` needs attention.

    The webhook URL is a secret: a Slack incoming-webhook URL is its own credential, so it is a
    ``SecretStr`` (best set as ``SEGSYNC_ALERTS__WEBHOOK_URL``) and never shown, not even in
    the warning about an alert that could not be delivered.
    """

    #: Posted to when a run exits 1, 3 or 4; no alerts without it.
    webhook_url: SecretStr | None = None
    #: ``slack``: Slack's incoming-webhook JSON (``text`` plus ``blocks``), which Mattermost
    #: and Rocket.Chat accept too; ``json``: segsync's own documented payload.
    format: Literal["slack", "json"] = "slack"
    #: How messages name this store (default: the config file's path).
    label: str | None = None
    #: Also post once when a run succeeds after one that failed, held removals or was killed.
    on_recovery: bool = True
    #: Seconds to wait for the webhook per attempt.
    timeout: float = Field(5.0, gt=0, le=60)
    #: Attempts per alert, the first included; 429, 5xx and network errors are retried.
    attempts: int = Field(3, ge=1, le=10)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = urlsplit(value.get_secret_value().strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            # The value is not repeated: it may be a real webhook written in the wrong place.
            raise ValueError("expected an http:// or https:// URL")
        return SecretStr(url.geturl())


class ScoringSettings(_Strict):
    """Thresholds of the built-in scores (:mod:`segsync.core.measure.scores`); days are whole days.

    Replenishment cycles differ from shop to shop, so every day-based threshold is a setting.
    """

    #: Lifecycle: NEW / REACTIVATED need the latest order fewer than this many days ago.
    n_new_days: int = Field(30, ge=1)
    #: Lifecycle: LAPSED after this many days without an order; also the gap that makes a
    #: returning customer REACTIVATED.
    n_lapsed_days: int = Field(240, ge=1)
    #: Lifecycle: LOST after this many days without an order.
    n_lost_days: int = Field(365, ge=1)
    #: Lifecycle: LOST as well when the model's P(alive) is below this (predictions on).
    lost_p_alive: float = Field(0.1, ge=0, le=1)
    #: Lifecycle: AT_RISK past this multiple of the customer's median gap between orders.
    at_risk_k: float = Field(1.5, gt=0)
    fading_min_orders: int = Field(3, ge=2)
    fading_factor: float = Field(2.0, gt=0)
    fading_min_days: int = Field(60, ge=0)
    #: Usage tier over the trailing 12 months, ranked by order count or by spend.
    usage_basis: Literal["orders", "spend"] = "orders"
    #: ``share``: HEAVY / MEDIUM are the top shares of buyers; ``fixed``: minimum values.
    usage_mode: Literal["share", "fixed"] = "share"
    usage_heavy_percent: int = Field(20, ge=0, le=100)
    usage_medium_percent: int = Field(30, ge=0, le=100)
    usage_heavy_min: float = 12
    usage_medium_min: float = 4
    #: Seasonal buyers: the window as month-days, both ends included; it may wrap the new year.
    seasonal_start: str = "11-15"
    seasonal_end: str = "12-31"
    seasonal_min_share: float = Field(0.5, gt=0, le=1)
    #: "Bought this time last year": days either side of the as-of date one year back.
    last_year_window_days: int = Field(14, ge=0, le=180)
    #: A replacement for the shipped R x F x M → rfm_group table (core/rfm_map.toml).
    rfm_map: ConfigPath | None = None
    #: Join the BG/NBD predictions into the features when they were computed for the as-of.
    predictions: bool = True
    #: Months of future value counted in ``clv``.
    clv_months: int = Field(12, ge=1)

    @field_validator("seasonal_start", "seasonal_end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        # Checked against a leap year so that 02-29 is a valid window bound.
        try:
            if len(value) != 5 or value[2] != "-":
                raise ValueError
            dt.date.fromisoformat(f"2000-{value}")
        except ValueError:
            raise ValueError(f"expected a month-day written MM-DD, such as 11-15, not {value!r}"
                             ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScoringSettings:
        if self.usage_heavy_percent + self.usage_medium_percent > 100:
            raise ValueError("usage_heavy_percent + usage_medium_percent exceed 100")
        if self.usage_medium_min > self.usage_heavy_min:
            raise ValueError("usage_medium_min is above usage_heavy_min")
        return self


class Settings(BaseSettings):
    """The whole configuration. Connector tables stay raw here; see :func:`build_sources`."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    #: Pin "today" for segment dates (demo data that does not move with the calendar).
    #: Real configs leave it out.
    as_of: dt.date | None = None
    plugin_dirs: list[ConfigPath] = Field(default_factory=list)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    destinations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    segments: dict[str, SegmentSettings] = Field(default_factory=dict)
    syncs: dict[str, SyncSettings] = Field(default_factory=dict)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    #: The file these settings came from (None when there was none).
    config_path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        for name, sync in self.syncs.items():
            if sync.segment not in self.segments:
                raise ValueError(f"syncs.{name}.segment: no segment named {sync.segment!r}")
            if sync.destination not in self.destinations:
                raise ValueError(
                    f"syncs.{name}.destination: no destination named {sync.destination!r}"
                )
        return self

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def render_validation_error(exc: ValidationError, where: str, prefix: str = "") -> list[str]:
    """One readable line per problem: ``file: key: message``."""
    lines = []
    for err in exc.errors():
        loc = _loc(tuple(err["loc"]))
        key = f"{prefix}.{loc}" if prefix and loc != "(top level)" else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"{where}: {key}: {msg}")
    return lines


def load_settings(path: Path | None = None, *, required: bool = False) -> Settings:
    """Read the config file (default ``./segsync.toml``) and the environment.

    A missing default file is fine (defaults plus environment) unless ``required``; a missing
    file named explicitly is an error.
    """
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_CONFIG
    if not path.exists():
        if explicit or required:
            raise ConfigError(f"{path}: config file not found (create one with 'segsync init')")
        path = None
    else:
        path = path.resolve()
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = str(path) if path else "environment"
    token = _toml_path.set(path)
    try:
        settings = _validate(path.parent if path else Path.cwd(), where)
    finally:
        _toml_path.reset(token)
    settings.config_path = path
    return settings


def _validate(base: Path, where: str) -> Settings:
    # BaseSettings.__init__ takes no validation context, so relative paths are resolved after.
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = render_validation_error(exc, where)
        raise ConfigError(lines[0], lines) from None
    settings.store.path = _rebase(settings.store.path, base)
    settings.plugin_dirs = [_rebase(p, base) for p in settings.plugin_dirs]
    if settings.scoring.rfm_map is not None:
        settings.scoring.rfm_map = _rebase(settings.scoring.rfm_map, base)
    return settings


def _rebase(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def connector_type(name: str, table: dict[str, Any]) -> str:
    """A connector table's type: its ``type`` key, or else the table's own name."""
    return str(table.get("type") or name)


def build_connector(
    kind: Literal["sources", "destinations"],
    name: str,
    table: dict[str, Any],
    cls: type[Source] | type[Destination] | None,
    settings: Settings,
) -> Source | Destination:
    """Validate one connector table with its connector's model and build the connector."""
    where = str(settings.config_path or "environment")
    type_name = connector_type(name, table)
    if cls is None:
        raise ConfigError(
            f"{where}: {kind}.{name}: unknown connector type {type_name!r} "
            "(see 'segsync plugins' for the installed ones)"
        )
    model: type[ConnectorConfig] = cls.Config
    try:
        config = model.model_validate(table, context={"base_dir": settings.base_dir})
    except ValidationError as exc:
        lines = render_validation_error(exc, where, f"{kind}.{name}")
        raise ConfigError(lines[0], lines) from None
    return cls(name, config, settings.base_dir)


def build_connectors(
    settings: Settings, plugins: Any
) -> tuple[dict[str, Source], dict[str, Destination]]:
    """Build every configured source and destination, collecting every problem before failing."""
    problems: list[str] = []
    built: dict[str, dict[str, Any]] = {"sources": {}, "destinations": {}}
    lookups = (("sources", plugins.source_class), ("destinations", plugins.destination_class))
    for kind, lookup in lookups:
        for name, table in getattr(settings, kind).items():
            try:
                built[kind][name] = build_connector(
                    kind, name, table, lookup(connector_type(name, table)), settings
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems[0], problems)
    return built["sources"], built["destinations"]
