"""Stage 2, measure: one row of features per person, as of a day.

In: ``people``, ``orders``, ``order_lines`` (written by :mod:`segsync.core.ingest`) and the
``[scoring]`` settings. Out: ``person_features``, rebuilt whole and swapped in atomically, and
``person_predictions`` (with ``prediction_inputs``, each buyer's model inputs that do not move
with the as-of, kept for incremental runs).

* :mod:`.attributes` is the catalog: every attribute a segment can name, its type and column;
* :mod:`.features` computes the per-person aggregates in set-based SQL passes (orders, spend net
  of refunds, recency, gaps, trailing windows, categories, consent);
* :mod:`.scores` holds the built-in scores (RFM from :file:`rfm_map.toml`, lifecycle, fading
  regulars, usage tiers, occasions, predicted spend tiers) and builds the table: features and
  scores in one build (:func:`.scores.build_features`), or the global columns alone
  (:func:`.scores.rescore`);
* :mod:`.btyd` fits BG/NBD and Gamma-Gamma (pure numpy/scipy); :mod:`.predict` summarises the
  store for them and writes P(alive), expected purchases and CLV;
* :mod:`.days` is the calendar arithmetic shared with the segment language.
* :mod:`.refresh` brings the table to a new as-of incrementally: only people whose records
  changed or whose as-of boundaries came are rebuilt, then one global pass.

Start reading at :func:`.scores.build_features`; a full build runs
:func:`.predict.write_predictions`, then it; the runner calls :func:`.refresh.refresh_features`,
which does a full build or an incremental one.
"""

from .attributes import ATTRIBUTES, BY_NAME, CONSENT_ENUM, CUSTOM_PREFIX, Attribute, AttrType
from .days import shift_date
from .features import compute_features
from .predict import coverage_lines, describe_gap, fit_from_store, write_predictions
from .refresh import refresh_features, segments_done
from .scores import GLOBAL_COLUMNS, build_features, rescore
