"""Stage 1, ingest: pull → resolve. Sources' records into the store, then people out of them.

In: the configured sources (each a :class:`~segsync.core.connector.Source`) and their stored
cursors. Out: canonical rows in the store and one person per real customer.

* :mod:`.pull` runs each source independently (a failing one never stops the others) and
  reports per source what changed;
* :mod:`.writer` upserts each record on its source key with a record hash, so a re-read page or
  file rewrites nothing, and stores a cursor only with every record before it;
* :mod:`.identifiers` normalises emails and phones (email-validator, phonenumbers to E.164);
* :mod:`.resolve` merges records sharing an identifier into people (stable ids) and merges
  their consent so an opt-out never becomes an opt-in;
* :mod:`.suppress` keeps keyed digests of erased people's identifiers, so the writer drops
  their records when a source hands them over again;
* :mod:`.stats` counts what the store holds per source (``segsync status``).

Tables written: ``customers``, ``orders``, ``order_lines``, ``raw_records``, ``rejects``,
``source_cursors``, ``source_files``, ``source_runs``, ``people``, ``person_merges``,
``identity_links``, ``suppressions``. Read: the same, nothing of a later stage.
"""

from .identifiers import normalise_email, normalise_phone
from .pull import SourceResult, pull_sources
from .resolve import resolve
from .stats import people_count, rejected_rows, source_stats
from .suppress import Suppressions, keyed_digest, record_value, suppress, suppression_counts
from .writer import IngestCounts, StoreWriter
