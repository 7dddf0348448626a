"""The ``[destinations.NAME]`` table of a ``klaviyo`` destination: which account, how to pace it."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from segsync.core.jobs import JobDestinationConfig

#: The stable revision segsync is written and tested against (reference: KL-OAS 2026-07-15).
DEFAULT_REVISION = "2026-07-15"
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


class KlaviyoConfig(JobDestinationConfig):
    """One Klaviyo account, reached with a private API key. ``state_dir`` holds the ledger of
    bulk import jobs; ``poll_interval`` paces the polls of a running one."""

    #: A private API key (``pk_…``) with the lists and profiles read/write scopes and the
    #: subscriptions write scope. Keep it out of the file with
    #: ``SEGSYNC_DESTINATIONS__<NAME>__API_KEY``.
    api_key: SecretStr
    #: The API revision sent in the ``revision`` header: ``YYYY-MM-DD`` with an optional
    #: ``.suffix``. Klaviyo answers a request in the shapes of the revision it names, so a
    #: pinned revision keeps segsync's parsing stable when Klaviyo ships a new one.
    revision: str = DEFAULT_REVISION
    #: Talk to this URL instead of ``https://a.klaviyo.com`` (a proxy, or a test fake).
    base_url: str = "https://a.klaviyo.com"
    #: Profiles per batch: Klaviyo takes at most 1000 ids per list-relationship call and 1000
    #: profiles per subscribe job, so larger batches would only be split again.
    batch_size: int = Field(1000, ge=1, le=1000)
    #: Batches in flight at once. The list and import endpoints allow 10 calls a second and
    #: 150 a minute per account, and each batch makes several calls.
    max_concurrency: int = Field(2, ge=1, le=10)
    #: Seconds to wait for one import job before leaving it to the next attempt or run.
    job_timeout: float = Field(600.0, gt=0)

    @field_validator("revision")
    @classmethod
    def _dated(cls, value: str) -> str:
        if not _REVISION.match(value):
            raise ValueError(f"{value!r} is not a Klaviyo revision (use a date such as "
                             f"'{DEFAULT_REVISION}')")
        return value
