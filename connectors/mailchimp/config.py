"""The ``[destinations.NAME]`` table of a ``mailchimp`` destination, and a sync's ``options``."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from segsync.core.connector import ConnectorConfig
from segsync.core.errors import ConfigError

log = logging.getLogger("segsync.mailchimp")

#: Mailchimp's own cap: 10 simultaneous connections per API key; an 11th gets a 429.
MAX_CONNECTIONS = 10
# An API key ends with its data centre: ``0123…cdef-us19``.
_DATA_CENTRE = re.compile(r"-([a-z]+[0-9]+)$")


class MailchimpConfig(ConnectorConfig):
    """One Mailchimp audience, reached with one API key."""

    #: A Marketing API key (Account → Extras → API keys), ``…-us19``. Keep it out of the file
    #: with ``SEGSYNC_DESTINATIONS__<NAME>__API_KEY``.
    api_key: SecretStr
    #: The audience's id (Audience → Settings → Audience name and defaults → Audience ID) …
    audience_id: str | None = None
    #: … or its exact name, looked up once per run; a name two audiences share is an error.
    audience: str | None = None
    #: Talk to this URL instead of ``https://<dc>.api.mailchimp.com/3.0`` (a proxy, a fake).
    base_url: str | None = None
    #: Simultaneous requests; Mailchimp refuses an 11th, and other tools on the same key count
    #: too, so lower it when something else uses the key while segsync runs.
    max_concurrency: int = Field(MAX_CONNECTIONS, ge=1, le=MAX_CONNECTIONS)
    #: Seconds to wait for a response (Mailchimp itself gives up after 120) and a connection.
    timeout: float = Field(60.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    #: Create contacts even when the audience requires a merge field segsync does not sync
    #: (Mailchimp's ``skip_merge_validation``); otherwise such contacts are rejected.
    skip_merge_validation: bool = False

    @model_validator(mode="after")
    def _one_audience_and_a_data_centre(self) -> MailchimpConfig:
        if (self.audience_id is None) == (self.audience is None):
            raise ValueError("give exactly one of audience_id or audience (its name)")
        if self.base_url is None and self.data_centre is None:
            raise ValueError("api_key must end with its data centre, such as '…-us19' "
                             "(or give base_url)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        return self

    @property
    def data_centre(self) -> str | None:
        match = _DATA_CENTRE.search(self.api_key.get_secret_value().strip())
        return match.group(1) if match else None

    @property
    def endpoint(self) -> str:
        """The API root every path is appended to."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://{self.data_centre}.api.mailchimp.com/3.0"


class SyncOptions(BaseModel):
    """A sync's ``options`` table for a Mailchimp destination.

    ``mode``: membership is always written 500 contacts per call, joins in the batch
    subscribe that upserts the contacts and leaves through the segment batch of the sync's tag
    (in Mailchimp a tag is a static segment), so ``static_segment`` is the only mode.
    ``tag``, which wrote one contact per call through the tags endpoint, is still accepted so
    that configs written for 0.1 keep running, with a warning; it writes the same tag the
    batched way, so the audience ends up exactly as it did.

    ``non_subscribed``: what happens to a new contact without email marketing consent (only
    possible when the sync's ``consent`` policy lets them through): ``skip`` (default) never
    creates them, ``transactional`` creates them as transactional contacts, who get no
    campaigns.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["static_segment", "tag"] = "static_segment"
    non_subscribed: Literal["skip", "transactional"] = "skip"

    @classmethod
    def parse(cls, options: dict[str, Any], destination: str) -> SyncOptions:
        """Validate ``options``; a problem is a ConfigError naming the option."""
        try:
            parsed = cls.model_validate(options)
        except ValidationError as exc:
            problems = [
                f"destination {destination!r}: options."
                + ".".join(str(p) for p in err["loc"])
                + ": " + ("unknown option" if err["type"] == "extra_forbidden" else err["msg"])
                for err in exc.errors()
            ]
            raise ConfigError(problems[0], problems) from None
        if parsed.mode == "tag":
            log.warning("destination %r: options.mode = \"tag\" is no longer needed: "
                        "membership goes to the same tag 500 contacts per call; remove the "
                        "option", destination)
        return parsed
