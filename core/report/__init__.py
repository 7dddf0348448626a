"""``segsync report``: one self-contained HTML page of the store, for people who judge segments
by looking.

In: every stage's tables (people, rejects and merges; ``person_features`` and
``person_predictions``; ``segments`` and ``segment_sizes``; the runs' summaries). Out: an HTML
string or file; it writes no table.

:mod:`.data` gathers the numbers (through the same functions as ``segsync segments list
--json`` and ``segsync status --json``), :mod:`.charts` draws them as inline SVG and
:mod:`.page` puts both in one HTML file that needs no network to open. The report reads every
stage's tables, so it sits above the stages and below the runner and the CLI.
"""

from .data import report_data, status_data
from .page import build_report, write_report
