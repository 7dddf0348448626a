"""The report page: one HTML file, styles inline, charts as inline SVG, no script, no link.

Numbers a test or a reader may check carry ``data-`` attributes holding the raw value
(``data-segment``/``data-size``, ``data-people``, ``data-source``/``data-customers`` …), so
they can be compared with the CLI's ``--json`` output without parsing formatted text.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2
from sqlite_utils import Database

from .. import __version__
from ..settings import Settings
from .data import report_data

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>segsync report, as of {{ d.as_of }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:0}
section{border-top:1px solid #ccc;padding:1rem 0}
.caption{color:#555;margin:.2rem 0 .8rem}
.row{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
.row>*{flex:1 1 20rem;min-width:0}
svg.chart{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem;display:block;max-width:100%;overflow-x:auto}
td,th{padding:.2rem .5rem;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
.wide{overflow-x:auto}.note{color:#8a4b08}
</style></head><body>
<h1>segsync report</h1>
<p class="caption">Store {{ d.status.store }}: <span data-people="{{ d.status.people }}">
{{ "{:,}".format(d.status.people) }}</span> people, as of {{ d.as_of }}
(segsync {{ version }}).</p>

<section id="segments"><h2>Segment sizes</h2>
<p class="caption">How many people each segment holds now, how that moved since the previous
run, and its size over the last runs.</p>
<div class="wide"><table><tr><th>segment</th><th>members</th><th>change</th><th>last runs</th>
<th>as of</th></tr>
{% for s in d.segments %}<tr data-segment="{{ s.name }}" data-size="{{ s.size }}">
<td title="{{ s.description or '' }}">{{ s.name }}</td>
<td>{{ "{:,}".format(s.size) if s.size is not none else "–" }}</td>
<td data-change="{{ s.change }}">
{{ "{:+,}".format(s.change) if s.change is not none else "–" }}</td>
<td>{{ s.spark | safe }}</td><td>{{ s.as_of or "never run" }}</td></tr>
{% endfor %}</table></div></section>

<section id="rfm"><h2>RFM grid</h2>
<p class="caption">Buyers by how recently (R) and how often (F) they buy, 5 the best fifth:
people and average spend per cell, and the named groups the cells make.</p>
<div class="row"><div>{{ rfm_chart | safe }}</div><div>{{ groups_chart | safe }}
<table><tr><th>group</th><th>people</th></tr>
{% for g, n in d.rfm.groups.items() %}<tr data-rfm-group="{{ g }}" data-people="{{ n }}">
<td>{{ g }}</td><td>{{ "{:,}".format(n) }}</td></tr>{% endfor %}</table></div></div>
</section>

<section id="lifecycle"><h2>Lifecycle funnel</h2>
<p class="caption">Where buyers stand: new, active, returning after a gap, at risk, lapsed,
lost ({{ "{:,}".format(d.lifecycle.prospects) }} people have not ordered yet).</p>
<div class="row"><div>{{ funnel_chart | safe }}</div>
<table><tr><th>stage</th><th>people</th><th>share</th></tr>
{% for s in d.lifecycle.stages %}<tr data-stage="{{ s.stage }}" data-people="{{ s.people }}">
<td>{{ s.stage }}</td><td>{{ "{:,}".format(s.people) }}</td>
<td>{{ "{:.1%}".format(s.share) }}</td></tr>{% endfor %}</table></div></section>

<section id="predictions"><h2>Churn risk and value</h2>
<p class="caption">From the BG/NBD and Gamma-Gamma fit: how likely each buyer is still a
customer, and what they are predicted to spend in the next 12 months.</p>
{% set p = d.predictions %}
{% for gap in p.gaps %}<p class="note" data-gap>{{ gap }}</p>{% endfor %}
<div class="row"><div>{{ alive_chart | safe }}</div><div>{{ value_chart | safe }}</div></div>
<table><tr><th>model</th><th>parameters</th></tr>
<tr data-model="bgnbd"><td>BG/NBD</td><td>{{ params(p.bgnbd) }}</td></tr>
<tr data-model="gamma_gamma"><td>Gamma-Gamma</td><td>{{ params(p.gamma_gamma) }}</td></tr>
</table><p data-with-predictions="{{ p.with_predictions }}">{{ "{:,}".format(p.with_predictions) }}
people have predictions.</p></section>

<section id="syncs"><h2>Sync health</h2>
<p class="caption">Per sync, what the last runs added, removed and failed to send, who the
consent gate let through or held back and why, and removals a guardrail held.</p>
{% for name, s in d.syncs.items() %}<div class="row" data-sync="{{ name }}"
 data-held="{{ s.held }}"><div><h3>{{ name }}</h3>{{ s.chart | safe }}</div>
<div><table><tr><th>run</th><th>added</th><th>removed</th><th>failed</th></tr>
{% for r in s.runs %}<tr data-run="{{ r.run_id }}" data-added="{{ r.added }}"
 data-removed="{{ r.removed }}" data-failed="{{ r.failed }}"><td>{{ r.run_id }}</td>
<td>{{ r.added }}</td><td>{{ r.removed }}</td><td>{{ r.failed }}</td></tr>{% endfor %}</table>
<table><tr><th>members by consent</th><th>people</th></tr>
{% for label, n in s.consent.items() %}<tr data-consent="{{ label }}" data-people="{{ n }}">
<td>{{ label }}</td><td>{{ "{:,}".format(n) }}</td></tr>{% endfor %}</table>
<p>{{ "%d removals held by a guardrail (%s)" % (s.held, s.held_reason) if s.held
      else "No removals held by a guardrail." }}</p></div></div>
{% else %}<p>No sync has run yet.</p>{% endfor %}</section>

<section id="quality"><h2>Data quality</h2>
<p class="caption">Rows imported and rejected per source, the most common reasons for
rejecting a row, how many duplicate people identity resolution merged, and how many records of
erased people were kept out.</p>
<div class="row"><div>{{ quality_chart | safe }}</div><div>
<table><tr><th>source</th><th>customers</th><th>orders</th><th>rejected</th></tr>
{% for name, s in d.status.sources.items() %}<tr data-source="{{ name }}"
 data-customers="{{ s.customers }}" data-orders="{{ s.orders }}"
 data-rejected="{{ s.rejected }}"><td>{{ name }}</td><td>{{ "{:,}".format(s.customers) }}</td>
<td>{{ "{:,}".format(s.orders) }}</td><td>{{ "{:,}".format(s.rejected) }}</td></tr>
{% endfor %}</table>
<table><tr><th>top reject reasons</th><th>rows</th></tr>
{% for r in d.quality.top_reasons %}<tr><td>{{ r.reason }}</td><td>{{ r.rows }}</td></tr>
{% else %}<tr><td>none</td><td>0</td></tr>{% endfor %}</table>
<p data-merged="{{ d.quality.merged }}">{{ "{:,}".format(d.quality.merged) }} people merged
by identity resolution.</p>
{% set dropped = d.quality.sources.values() | sum(attribute="erased_dropped") %}
<p data-erased-dropped="{{ dropped }}">{{ "{:,}".format(dropped) }} records of erased people
(<code>segsync forget</code>) dropped at import.</p></div></div></section>
</body></html>
"""


#: The models' parameters, in the order the literature writes them.
_PARAMS = ("r", "alpha", "a", "b", "p", "q", "gamma")


def _params(model: dict[str, Any] | None) -> str:
    if not model:
        return "not fitted"
    return ", ".join(f"{k} = {model[k]:.4g}" for k in _PARAMS if k in model) + (
        f" (log-likelihood {model['log_likelihood']:.1f})" if "log_likelihood" in model else "")


def build_report(db: Database, settings: Settings, as_of: dt.date) -> str:
    """The report page for the store as of ``as_of``, as one HTML string."""
    # Imported here: matplotlib takes a few tenths of a second to load, which every other
    # command (they all import this package through the CLI) would otherwise pay.
    from . import charts

    d = report_data(db, settings, as_of)
    for s in d["segments"]:
        s["spark"] = charts.sparkline(s["history"], s["name"]) if s["history"] else ""
    for name, s in d["syncs"].items():
        s["chart"] = charts.sync_runs(s["runs"], name)
    p = d["predictions"]
    quality = {f"{n} imported": s["imported"] for n, s in d["quality"]["sources"].items()}
    quality |= {f"{n} rejected": s["rejected"] for n, s in d["quality"]["sources"].items()}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        d=d, version=__version__, params=_params,
        rfm_chart=charts.rfm_heatmap(d["rfm"]["cells"]),
        groups_chart=charts.hbar(d["rfm"]["groups"], "People per named RFM group"),
        funnel_chart=charts.hbar({s["stage"]: s["people"] for s in d["lifecycle"]["stages"]},
                                 "Lifecycle funnel: buyers per stage"),
        alive_chart=charts.histogram(p["p_alive"], "P(alive)",
                                     "Distribution of P(alive), the chance a buyer is active"),
        value_chart=charts.histogram(p["predicted_12m_spend"], "predicted 12-month spend",
                                     "Distribution of predicted 12-month spend"),
        quality_chart=charts.hbar(quality, "Rows imported and rejected per source"),
    )


def write_report(db: Database, settings: Settings, as_of: dt.date, path: Path) -> int:
    """Write the report to ``path`` (replaced whole, never half written); return its size."""
    page = build_report(db, settings, as_of).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(page)
