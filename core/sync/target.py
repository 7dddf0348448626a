"""What a sync's baseline is acknowledged under: its target's name and its settings' hash.

A baseline row counts only under the config hash it was confirmed with (DESIGN §4 rule 1): any
change of the sync's mapping, target, consent policy, options, or of the destination's own
config, changes the hash and forces a full re-diff.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..connector import Destination
from ..settings import SyncSettings


def canonical_hash(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, no spaces), so equal configs hash
    equally however their dicts were ordered."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def target_name(sync: SyncSettings) -> str:
    """The sync's target at its destination: ``target``, or else the segment's name."""
    return sync.target or sync.segment


def config_hash(sync: SyncSettings, destination: Destination) -> str:
    """The hash baseline rows are acknowledged under.

    Besides the sync's own settings it covers the destination's type and validated config
    (secrets dump masked, so rotating a key changes nothing): pointing a destination at another
    folder, server or list must re-send everything, or the new place would stay empty while the
    baseline claims it is full.
    """
    return canonical_hash(
        {
            "segment": sync.segment,
            "destination": sync.destination,
            "destination_type": destination.type_name,
            "destination_config": destination.config.model_dump(mode="json"),
            "target": target_name(sync),
            "fields": sync.fields,
            "consent": sync.consent,
            "options": sync.options,
        }
    )

