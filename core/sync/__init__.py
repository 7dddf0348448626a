"""Stage 4, sync: plan → push → record. Segment membership out to the destinations, safely.

In: ``segment_members`` and ``person_features`` (earlier stages) and, per sync, what its
destination last confirmed. Out: writes at the destinations and, in the store, the new
acknowledged baseline and the row-level log.

* :mod:`.plan` builds one sync's :class:`~.plan.Plan` from the desired set (:mod:`.gate`: key,
  consent gate, payload) and its diff against the baseline (:mod:`.diff`: adds, updates,
  removes, keys in doubt, guardrails); :mod:`.target` names the hash a baseline is
  acknowledged under;
* :mod:`.push` sends a plan in journalled, concurrent batches and records every outcome; the
  baseline moves only for what the destination confirmed;
* :mod:`.reconcile` rewrites a baseline to what the target really holds (``run --reconcile``);
* :mod:`.forget` erases a person (``segsync forget``) and lets the next push remove them.

Tables written: ``sync_state`` (the acknowledged baseline), ``sync_outcomes`` (last attempt per
key), ``sync_journal`` (batches in flight), ``sync_log`` (every row's outcome),
``sync_targets``. The safety rules of DESIGN §4 hold here: start reading at
:func:`.plan.plan_sync`, then :func:`.push.push`.
"""

from .forget import Forgotten, forget, scrub_log
from .gate import OPTED_OUT, gate_reasons
from .plan import Plan, PlannedChange, plan_sync
from .push import SyncResult, push, sync_log_count, sync_log_rows, sync_logged
from .reconcile import reconcile
