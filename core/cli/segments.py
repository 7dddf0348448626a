"""``segsync segments …`` and ``segsync model …``: looking at segments and predictive models."""

from __future__ import annotations

import datetime as dt

import typer

from ..errors import ConfigError, SegsyncError
from ..ingest import normalise_email, normalise_phone
from ..measure import coverage_lines, fit_from_store
from ..runner import measure_and_segment, resolve_as_of
from ..segment import (
    TEMPLATES,
    compile_segment,
    describe_segment,
    describe_templates,
    people_with_key,
    preview,
    stored_segments,
    why_member,
)
from ..sync import gate_reasons
from ..sync.gate import CONSENT_LABELS
from .options import AsOfOption, JsonOption, app_state, as_date, require_known
from .output import out, print_json, table

segments_app = typer.Typer(help="List, inspect and preview segments.", no_args_is_help=True)
model_app = typer.Typer(help="Fit and inspect the predictive models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(segments_app, name="segments")
    app.add_typer(model_app, name="model")


def _segment(ctx: typer.Context, name: str):
    settings = app_state(ctx).settings
    require_known("segment", name, settings.segments)
    return settings.segments[name]


@segments_app.command("list")
def list_segments(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Configured segments with their size at the last run.

    \b
    Example:
      segsync segments list
    """
    state = app_state(ctx)
    rows = stored_segments(state.db, state.settings.segments)
    if as_json:
        print_json(rows)
        return
    out.print(table(["segment", "kind", "members", "as of", "description"],
                    [[r["name"], r["kind"], r["size"], r["as_of"], r["description"]]
                     for r in rows]))


@segments_app.command("show")
def show(ctx: typer.Context, name: str, as_of: dt.datetime | None = AsOfOption,
         as_json: bool = JsonOption) -> None:
    """A segment's definition, a template expanded.

    \b
    Example:
      segsync segments show lapsed
    """
    seg = _segment(ctx, name)
    day = resolve_as_of(app_state(ctx).settings, as_date(as_of))
    compiled = compile_segment(name, seg, day, TEMPLATES)
    data = {"name": name, "description": seg.description, "kind": compiled.kind,
            "query": seg.query, "template": seg.template, "params": seg.params, "sql": seg.sql,
            "expanded_query": TEMPLATES[seg.template](seg.params) if seg.template else None,
            "definition_hash": compiled.definition_hash}
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if value not in (None, "", {}):
            out.print(f"{key}: {value}", markup=False)


@segments_app.command("preview")
def preview_segment(ctx: typer.Context, name: str, as_of: dt.datetime | None = AsOfOption,
                    limit: int = typer.Option(10, help="How many members to show."),
                    as_json: bool = JsonOption) -> None:
    """A segment's size and a sample of its members.

    Computed from the store's current data.

    \b
    Example:
      segsync segments preview top_spenders
    """
    state = app_state(ctx)
    seg = _segment(ctx, name)
    day = resolve_as_of(state.settings, as_date(as_of))
    db = state.db
    # Features are recomputed for the asked day inside a rolled-back transaction, so a
    # preview never changes what the last run stored.
    db.execute("BEGIN")
    try:
        measure_and_segment(db, state.settings, day, None)
        size, rows = preview(db, name, seg, day, limit, TEMPLATES)
    finally:
        db.conn.rollback()
    if as_json:
        print_json({"name": name, "as_of": day.isoformat(), "size": size, "sample": rows})
        return
    out.print(f"{name}: {size:,} members as of {day}")
    if rows:
        columns = list(rows[0])
        out.print(table(columns, [[r[c] for c in columns] for r in rows]))


@segments_app.command("explain")
def explain_segment(ctx: typer.Context, name: str, as_of: dt.datetime | None = AsOfOption,
                    sql: bool = typer.Option(False, "--sql",
                                             help="Show the compiled SQL and its parameters."),
                    as_json: bool = JsonOption) -> None:
    """What a segment means, condition by condition.

    Each condition in words, with the [scoring] thresholds behind built-in scores and
    relative dates resolved to the as-of day; --sql shows the SQL it compiles to.

    \b
    Example:
      segsync segments explain fading_regulars
      segsync segments explain lapsed --sql
    """
    seg = _segment(ctx, name)
    settings = app_state(ctx).settings
    day = resolve_as_of(settings, as_date(as_of))
    described = describe_segment(name, seg, day, settings.scoring, TEMPLATES)
    if as_json:
        print_json(described)
        return
    if sql:
        out.print(described["sql"], markup=False)
        for key, value in described["params"].items():
            out.print(f"  :{key} = {value!r}", markup=False)
        return
    _print_conditions(described)


def _print_conditions(described: dict, person: dict | None = None) -> None:
    header = f"{described['name']}: {described['description'] or described['kind']}"
    out.print(f"{header} (as of {described['as_of']})", markup=False)
    if described["query"] is None:
        out.print("  a SQL segment: see --sql for its statement", markup=False)
    else:
        out.print(f"  query: {described['query']}", markup=False)
        out.print("  members are people for whom:", markup=False)
    for c in described["conditions"]:
        pad = "    " + "  " * c["depth"]
        mark = "" if person is None else ("[yes] " if c["held"] else "[no]  ")
        if "group" in c:
            out.print(f"{pad}{mark}{c['group']}:", markup=False)
            continue
        value = c.get("value")
        if isinstance(value, bool):
            value = str(value).lower()
        value = "" if person is None or value is None else f" (theirs: {value})"
        out.print(f"{pad}{mark}{c['condition']}{value}", markup=False)
        out.print(f"{pad}      {c['meaning']}", markup=False, soft_wrap=True)


@segments_app.command("why")
def why(ctx: typer.Context, name: str,
        who: str = typer.Argument(..., metavar="EMAIL|PHONE", help="The person's email or phone."),
        as_of: dt.datetime | None = AsOfOption, as_json: bool = JsonOption) -> None:
    """Why one person is in a segment or not, and each sync.

    Why one person is in a segment or not, and what each sync does with them.

    Each condition with the person's value and whether it held, then, per sync of the
    segment, whether the consent gate holds them out. Computed from the store as of the day,
    changing nothing.

    \b
    Example:
      segsync segments why lapsed ann@example.com
    """
    state = app_state(ctx)
    seg = _segment(ctx, name)
    settings = state.settings
    day = resolve_as_of(settings, as_date(as_of))
    key = normalise_email(who)[0] or normalise_phone(who, settings.store.default_region)[0]
    if key is None:
        raise ConfigError(f"{who!r} is not an email address or a phone number")
    syncs = {n: s for n, s in settings.syncs.items() if s.segment == name and s.enabled}
    _, destinations = state.connectors()
    db = state.db
    db.execute("BEGIN")
    try:
        measure_and_segment(db, settings, day, None)
        people = people_with_key(db, key)
        if not people:
            raise ConfigError(f"nobody in the store has the email or phone {key}")
        found = []
        for person_id in people:
            result = why_member(db, name, seg, day, person_id, settings.scoring, TEMPLATES)
            result["syncs"] = {}
            for sync_name, sync in syncs.items():
                identity = destinations[sync.destination].capabilities.identity
                held_out, reason = gate_reasons(db, sync, identity, [person_id]).get(
                    person_id, (None, None))
                result["syncs"][sync_name] = (
                    {"sent": False, "consent": None, "reason": "not in the segment"}
                    if not result["member"] else
                    {"sent": reason is None, "consent": held_out or "eligible",
                     "reason": reason})
            found.append(result)
    finally:
        db.conn.rollback()
    if as_json:
        print_json({"key": key, "people": found})
        return
    for result in found:
        verdict = "IS" if result["member"] else "is NOT"
        out.print(f"{key} (person {result['person_id']}) {verdict} in {name}", markup=False)
        _print_conditions(result, person=result)
        for sync_name, s in result["syncs"].items():
            state_text = ("sent" if s["sent"] else "not sent: " + (
                f"{CONSENT_LABELS[s['consent']]} ({s['reason']})" if s["consent"]
                else s["reason"]))
            out.print(f"  sync {sync_name}: {state_text}", markup=False)


@segments_app.command("templates")
def templates(as_json: bool = JsonOption) -> None:
    """Built-in templates and the query each expands to.

    Each template with its parameters and the exact query it expands to.

    \b
    Example:
      segsync segments templates
    """
    described = describe_templates()
    if as_json:
        print_json(described)
        return
    out.print(table(["template", "parameters", "expands to"],
                    [[t["name"], ", ".join(p["takes"] and f"{p['name']}" for p in t["params"]),
                      t["query"]] for t in described]))


@model_app.command("fit")
def fit(ctx: typer.Context, as_of: dt.datetime | None = AsOfOption,
        as_json: bool = JsonOption) -> None:
    """Fit the churn and value models and print them.

    Fit BG/NBD and Gamma-Gamma on the store's history as of a day; print the parameters,
    the log-likelihood, fit diagnostics and who would get predictions (exit 1 when nobody
    would: too little history, or no convergence).

    \b
    Example:
      segsync model fit --as-of 2026-06-01
    """
    state = app_state(ctx)
    day = resolve_as_of(state.settings, as_date(as_of))
    report = fit_from_store(state.db, day)
    if as_json:
        print_json(report)
    else:
        out.print_json(data=report)
        for line in coverage_lines(report["coverage"]):
            out.print(line, markup=False)
    if "purchase" in report["problems"]:
        raise SegsyncError(f"no predictions: {report['problems']['purchase']}")
