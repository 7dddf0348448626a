"""The ``[destinations.NAME]`` table of a ``simpletexting`` destination."""

from __future__ import annotations

from pydantic import Field, SecretStr

from segsync.core.jobs import JobDestinationConfig


class SimpleTextingConfig(JobDestinationConfig):
    """One SimpleTexting account, reached with an API token (API v2). ``state_dir`` holds the
    ledger of batch-update tasks; ``poll_interval`` paces the polls of a running one."""

    #: The account's API token (Settings → API). Keep it out of the file with
    #: ``SEGSYNC_DESTINATIONS__<NAME>__API_TOKEN``.
    api_token: SecretStr
    #: Talk to this URL instead of ``https://api-app2.simpletexting.com/v2`` (a proxy, or a
    #: test fake).
    base_url: str = "https://api-app2.simpletexting.com/v2"
    #: Contacts per batch update; SimpleTexting takes at most 500.
    batch_size: int = Field(500, ge=1, le=500)
    #: Batches in flight at once. SimpleTexting publishes no rate limit, so stay gentle.
    max_concurrency: int = Field(1, ge=1, le=5)
    #: Seconds to wait for one task before leaving it to the next attempt or run.
    task_timeout: float = Field(600.0, gt=0)
