"""The smallest store that syncs: one customers CSV, everyone in one segment, one Klaviyo list.

For the CLI tests that need a destination to misbehave (never answer, quote a key back), where
only the Klaviyo address and settings change.
"""

from __future__ import annotations

from pathlib import Path

CUSTOMERS = "id,email,email_ok\n1,ada@inbox-mail.com,yes\n2,bob@inbox-mail.com,yes\n"


def write_one_sync_config(folder: Path, klaviyo_url: str, klaviyo_extra: str = "") -> Path:
    """``folder/segsync.toml`` and its CSV; ``klaviyo_extra`` is more TOML for the
    destination's table (an ``api_key``, a ``timeout``)."""
    (folder / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    config = folder / "segsync.toml"
    config.write_text(f"""\
[store]
path = "segsync.db"

[sources.crm]
type = "pos_csv"
path = "customers.csv"
stream = "customers"
mapping = {{ customer_key = "id", email = "email", email_consent = "email_ok" }}
consent_values = {{ yes = "subscribed" }}

[destinations.klaviyo]
base_url = "{klaviyo_url}"
{klaviyo_extra}

[segments.everyone]
query = "number_of_orders >= 0"

[syncs.newsletter]
segment = "everyone"
destination = "klaviyo"
target = "Newsletter"
""", encoding="utf-8")
    return config
