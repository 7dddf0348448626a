"""The ``[destinations.NAME]`` table of a ``simpletexting`` destination."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from segsync.core.connector import ConnectorConfig
from segsync.core.settings import ConfigPath


class SimpleTextingConfig(ConnectorConfig):
    """One SimpleTexting account, reached with an API token (API v2)."""

    #: The account's API token (Settings → API). Keep it out of the file with
    #: ``SEGSYNC_DESTINATIONS__<NAME>__API_TOKEN``.
    api_token: SecretStr
    #: Talk to this URL instead of ``https://api-app2.simpletexting.com/v2`` (a proxy, or a
    #: test fake).
    base_url: str = "https://api-app2.simpletexting.com/v2"
    #: Folder of the small JSON file that remembers batch-update tasks between runs (see the
    #: README); relative to the config file's folder.
    state_dir: ConfigPath = Path(".")
    #: Contacts per batch update; SimpleTexting takes at most 500.
    batch_size: int = Field(500, ge=1, le=500)
    #: Batches in flight at once. SimpleTexting publishes no rate limit, so stay gentle.
    max_concurrency: int = Field(1, ge=1, le=5)
    #: Seconds between polls of a running batch-update task.
    poll_interval: float = Field(2.0, gt=0)
    #: Seconds to wait for one task before leaving it to the next attempt or run.
    task_timeout: float = Field(600.0, gt=0)
    #: Seconds to wait for a response.
    timeout: float = Field(30.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")
