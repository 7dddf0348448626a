"""The report's charts: matplotlib figures rendered to inline SVG strings.

Static SVG needs no script and no network to display, stays small (a few kilobytes a chart),
and scales on a phone as on a laptop. Text stays text (``svg.fonttype = 'none'``: no glyph
outlines, no embedded or downloaded font; the browser's own sans-serif draws it), and every
chart carries a ``<title>`` and ``<desc>`` for screen readers; the page also prints the same
numbers in a table beside each chart.
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

matplotlib.rcParams.update({
    "svg.fonttype": "none",
    "svg.hashsalt": "segsync",  # stable ids: the same data gives the same file
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
})

COLOR = "#2f6690"
_HEAD = re.compile(r"^.*?(<svg\b)", re.S)


def to_svg(fig, title: str, desc: str) -> str:
    """The figure as an ``<svg>`` element with a title and description, then closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = _HEAD.sub(r"\1", buf.getvalue(), count=1)  # drop the XML prolog and doctype
    open_end = svg.index(">") + 1
    head = svg[:open_end].replace("<svg ", '<svg role="img" class="chart" ', 1)
    return (f"{head}<title>{html.escape(title)}</title><desc>{html.escape(desc)}</desc>"
            f"{svg[open_end:]}")


def sparkline(sizes: list[int], name: str) -> str:
    fig, ax = plt.subplots(figsize=(1.4, 0.35))
    ax.plot(range(len(sizes)), sizes, color=COLOR, linewidth=1.2)
    if sizes:
        ax.plot([len(sizes) - 1], [sizes[-1]], "o", color=COLOR, markersize=2.5)
    ax.axis("off")
    return to_svg(fig, f"{name}: size over the last runs",
                  "Sizes, oldest first: " + ", ".join(map(str, sizes)))


def rfm_heatmap(cells: list[dict]) -> str:
    grid = [[0] * 5 for _ in range(5)]
    spend = [[0.0] * 5 for _ in range(5)]
    for c in cells:
        grid[c["f"] - 1][c["r"] - 1] = c["people"]
        spend[c["f"] - 1][c["r"] - 1] = c["avg_spend"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(grid, cmap="Blues", origin="lower")
    top = max(max(row) for row in grid) or 1
    for f in range(5):
        for r in range(5):
            ax.text(r, f, f"{grid[f][r]:,}\n{spend[f][r]:,.0f}", ha="center", va="center",
                    fontsize=8, color="white" if grid[f][r] > top / 2 else "black")
    ax.set_xticks(range(5), [str(i) for i in range(1, 6)])
    ax.set_yticks(range(5), [str(i) for i in range(1, 6)])
    ax.set_xlabel("recency score (5 = bought most recently)")
    ax.set_ylabel("frequency score (5 = buys most often)")
    return to_svg(fig, "RFM grid: people and average spend per recency and frequency score",
                  "; ".join(f"R{c['r']} F{c['f']}: {c['people']} people, average spend "
                            f"{c['avg_spend']}" for c in cells))


def hbar(counts: dict[str, int], title: str) -> str:
    labels = list(counts)[::-1]
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(labels) + 0.6))
    ax.barh(labels, [counts[k] for k in labels], color=COLOR)
    for i, k in enumerate(labels):
        ax.text(counts[k], i, f" {counts[k]:,}", va="center", fontsize=8)
    ax.set_xlabel("people")
    return to_svg(fig, title, "; ".join(f"{k}: {v}" for k, v in counts.items()))


def histogram(values: list[float], xlabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 2.4))
    if values:
        ax.hist(values, bins=20, color=COLOR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("people")
    return to_svg(fig, title, f"Histogram of {len(values)} values in 20 bins"
                  + (f", from {min(values):.2f} to {max(values):.2f}" if values else ""))


def sync_runs(runs: list[dict], name: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 2))
    xs = list(range(len(runs)))
    width = 0.27
    for offset, key, color in ((-width, "added", "#3a7d44"), (0, "removed", "#c1666b"),
                               (width, "failed", "#6c757d")):
        ax.bar([x + offset for x in xs], [r[key] for r in runs], width, label=key, color=color)
    ax.set_xticks(xs, [f"run {r['run_id']}" for r in runs], fontsize=7)
    ax.legend(fontsize=7, frameon=False)
    return to_svg(fig, f"{name}: adds, removes and failures per run",
                  "; ".join(f"run {r['run_id']}: {r['added']} added, {r['removed']} removed, "
                            f"{r['failed']} failed" for r in runs))
