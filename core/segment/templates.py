"""Template segments: named, parameterised segments that expand to the segment language.

A config can say ``template = "lapsed"`` with ``params = { days = 180 }`` instead of writing the
query. Every template expands to an ordinary query string, which
:func:`segsync.core.segment.membership.compile_segment` then parses, type-checks and compiles like a
hand-written one, so templates get the same parameter binding and the same definition hash
rules, and a template can never produce SQL the language could not.

:data:`TEMPLATES` is the registry to pass as ``templates=`` to ``compile_segment`` /
``materialise``. Parameters are checked here, before any query is built: an unknown or missing
parameter, or a value of the wrong type or range, is a :class:`ConfigError` naming the template
and the parameter. Text parameters are quoted and escaped into the query, so a city such as
``O'Fallon`` is a value, never query syntax.

Each template's docstring shows the exact query it expands to with its defaults (and, for a
required parameter, the example value); :func:`describe_templates` returns the same for the
README table.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ..errors import ConfigError
from ..measure import BY_NAME

#: Day windows beyond a century are typos; refusing them here names the parameter, where an
#: out-of-range date would only fail later inside the query.
MAX_DAYS = 36_525


@dataclass(frozen=True)
class Param:
    """One template parameter: its kind, its default (or an example when required), its range.

    ``integer`` takes whole numbers; ``number`` any finite number; ``text`` a non-empty
    string; ``choice`` one of ``choices``, matched case-insensitively because config authors
    write ``stage = "lapsed"`` as often as ``"LAPSED"``.
    """

    name: str
    kind: Literal["integer", "number", "text", "choice"]
    default: Any = None
    #: For a required parameter (no default): the value shown in docs and examples.
    example: Any = None
    minimum: float | None = None
    maximum: float | None = None
    #: A number must be above ``minimum`` rather than at least ``minimum``.
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        """What the parameter takes, as error messages show it."""
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "text":
            return "a non-empty text"
        noun = "a whole number" if self.kind == "integer" else "a number"
        low = None if self.minimum is None else _number(self.minimum)
        high = None if self.maximum is None else _number(self.maximum)
        if low is not None and high is not None and not self.exclusive_minimum:
            return f"{noun} from {low} to {high}"
        bounds = []
        if low is not None:
            bounds.append(f"above {low}" if self.exclusive_minimum else f"at least {low}")
        if high is not None:
            bounds.append(f"at most {high}")
        return " ".join([noun, " and ".join(bounds)]).strip()

    def check(self, value: Any) -> Any:
        """``value`` in its canonical form, or ``None`` when it is not acceptable."""
        if self.kind == "choice":
            folded = {c.lower(): c for c in self.choices}
            return folded.get(value.lower()) if isinstance(value, str) else None
        if self.kind == "text":
            return value if isinstance(value, str) and value.strip() else None
        # bool is an int in Python, but `days = true` in a config is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.kind == "integer" and not isinstance(value, int):
            return None
        if not math.isfinite(value):
            return None
        if self.minimum is not None and (
                value <= self.minimum if self.exclusive_minimum else value < self.minimum):
            return None
        if self.maximum is not None and value > self.maximum:
            return None
        return value


@dataclass(frozen=True)
class SegmentTemplate:
    """A registered template: call it with the segment's ``params`` to get its query."""

    name: str
    params: tuple[Param, ...]
    build: Callable[..., str]
    description: str

    def __call__(self, params: Mapping[str, Any]) -> str:
        return self.build(**self.resolve(params))

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``params`` and fill in defaults; every problem is listed in the ConfigError."""
        names = [p.name for p in self.params]
        takes = ", ".join(names) or "no parameters"
        problems = [f"template {self.name!r}: unknown parameter {key!r} (it takes {takes})"
                    for key in params if key not in names]
        values: dict[str, Any] = {}
        for param in self.params:
            if param.name not in params:
                if param.required:
                    problems.append(f"template {self.name!r}: missing parameter "
                                    f"{param.name!r} ({param.describe()})")
                values[param.name] = param.default
                continue
            value = param.check(params[param.name])
            if value is None:
                problems.append(f"template {self.name!r}: parameter {param.name!r} must be "
                                f"{param.describe()}, not {params[param.name]!r}")
            values[param.name] = value
        if problems:
            raise ConfigError(problems[0], problems)
        return values

    def example(self) -> str:
        """The query for the defaults, with each required parameter at its example value."""
        return self.build(**{p.name: p.example if p.required else p.default
                             for p in self.params})


#: Every built-in template by name: pass as ``templates=`` to compile_segment / materialise.
TEMPLATES: dict[str, SegmentTemplate] = {}


def _template(*params: Param) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register the decorated function as a template named after it, taking ``params``."""

    def register(build: Callable[..., str]) -> Callable[..., str]:
        doc = inspect.getdoc(build) or ""
        TEMPLATES[build.__name__] = SegmentTemplate(
            build.__name__, params, build, doc.split("\n\n")[0].replace("\n", " "))
        return build

    return register


def describe_templates() -> list[dict[str, Any]]:
    """Every template as ``name``, ``params``, ``query`` (its expansion with the defaults and
    examples) and ``description``: the README's template table is generated from this, so the
    documentation cannot drift from the code."""
    return [
        {
            "name": t.name,
            "params": [
                {"name": p.name, "type": p.kind, "required": p.required,
                 "default": p.default, "example": p.example, "choices": list(p.choices),
                 "takes": p.describe()}
                for p in t.params
            ],
            "query": t.example(),
            "description": t.description,
        }
        for t in TEMPLATES.values()
    ]


def _quote(text: str) -> str:
    """A string literal of the segment language: backslash and quote escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(value: float) -> str:
    """A number literal of the segment language, which has no exponent notation."""
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _days(default: int, minimum: int = 1) -> Param:
    return Param("days", "integer", default, minimum=minimum, maximum=MAX_DAYS)


def _choice(name: str, attribute: str, example: str) -> Param:
    return Param(name, "choice", example=example, choices=BY_NAME[attribute].values)


# -- purchase history --------------------------------------------------------------------------


@_template(_days(30))
def new_customers(days: int) -> str:
    """First-time customers: exactly one order, placed in the last ``days`` days.

    Expands to ``number_of_orders = 1 AND first_order_date > -30d``.
    """
    return f"number_of_orders = 1 AND first_order_date > -{days}d"


@_template()
def returning_customers() -> str:
    """Customers with two orders or more.

    Expands to ``number_of_orders >= 2``.
    """
    return "number_of_orders >= 2"


@_template(_days(240))
def lapsed(days: int) -> str:
    """Customers whose latest order is more than ``days`` days old (Mailchimp: 8 months).

    Expands to ``days_since_last_order > 240``.
    """
    return f"days_since_last_order > {days}"


@_template()
def fading_regulars() -> str:
    """Regulars now well past their usual gap between orders (see ``[scoring] fading_*``).

    Expands to ``is_fading_regular = true``.
    """
    return "is_fading_regular = true"


@_template(Param("percent", "number", 10, minimum=0, exclusive_minimum=True, maximum=100))
def top_spenders(percent: float) -> str:
    """The top ``percent`` % of buyers by lifetime spend; ties are kept together, so the
    segment never holds more than ``percent`` % of buyers.

    Expands to ``spend_percentile >= 90``.
    """
    return f"spend_percentile >= {_number(100 - percent)}"


@_template(Param("amount", "number", 1000, minimum=0), _days(30))
def big_spenders(amount: float, days: int) -> str:
    """Customers who spent at least ``amount`` (net of refunds) in the last ``days`` days.

    Expands to ``orders_placed MATCHES (sum_amount >= 1000, date > -30d)``.
    """
    return f"orders_placed MATCHES (sum_amount >= {_number(amount)}, date > -{days}d)"


@_template(Param("category", "text", example="Books"), _days(365))
def category_buyers(category: str, days: int) -> str:
    """Customers who bought from ``category`` (case-insensitive) in the last ``days`` days.

    Expands to ``products_purchased MATCHES (category = 'Books', date > -365d)``.
    """
    return f"products_purchased MATCHES (category = {_quote(category)}, date > -{days}d)"


@_template(Param("percent", "number", 5, minimum=0, exclusive_minimum=True, maximum=100),
           _days(365))
def vip(percent: float, days: int) -> str:
    """Top ``percent`` % of buyers by lifetime spend who also ordered in the last ``days`` days.

    Expands to ``spend_percentile >= 95 AND last_order_date > -365d``.
    """
    return f"spend_percentile >= {_number(100 - percent)} AND last_order_date > -{days}d"


# -- scores and predictions --------------------------------------------------------------------


@_template(_choice("group", "rfm_group", "CHAMPIONS"))
def rfm_group(group: str) -> str:
    """Customers in one RFM group (core/rfm_map.toml).

    Expands to ``rfm_group = 'CHAMPIONS'``.
    """
    return f"rfm_group = {_quote(group)}"


@_template(_choice("stage", "lifecycle_stage", "AT_RISK"))
def lifecycle(stage: str) -> str:
    """Customers in one lifecycle stage (PROSPECT, NEW, REACTIVATED, LOST, LAPSED, AT_RISK,
    ACTIVE).

    Expands to ``lifecycle_stage = 'AT_RISK'``.
    """
    return f"lifecycle_stage = {_quote(stage)}"


@_template(_choice("tier", "usage_tier", "HEAVY"))
def usage_tier(tier: str) -> str:
    """Heavy, medium or light buyers over the last 12 months.

    Expands to ``usage_tier = 'HEAVY'``.
    """
    return f"usage_tier = {_quote(tier)}"


@_template(Param("threshold", "number", 0.7, minimum=0, maximum=1))
def high_churn_risk(threshold: float) -> str:
    """Customers the purchase model gives a churn risk above ``threshold`` (needs predictions).

    Expands to ``churn_risk > 0.7``.
    """
    return f"churn_risk > {_number(threshold)}"


@_template()
def predicted_high_value() -> str:
    """Customers in the top predicted spend tier for the next year (needs predictions).

    Expands to ``predicted_spend_tier = 'HIGH'``.
    """
    return "predicted_spend_tier = 'HIGH'"


# -- occasions ---------------------------------------------------------------------------------


@_template()
def seasonal_buyers() -> str:
    """Customers who buy mostly in the season window (``[scoring] seasonal_*``).

    Expands to ``is_seasonal_buyer = true``.
    """
    return "is_seasonal_buyer = true"


@_template()
def bought_this_time_last_year() -> str:
    """Customers who ordered around this date last year.

    Expands to ``bought_this_time_last_year = true``.
    """
    return "bought_this_time_last_year = true"


@_template(_days(7, minimum=0))
def birthday_soon(days: int) -> str:
    """Customers whose birthday falls today or in the next ``days`` days.

    Expands to ``birthday_in_days <= 7``.
    """
    return f"birthday_in_days <= {days}"


@_template(_days(7, minimum=0))
def anniversary_soon(days: int) -> str:
    """Customers whose first-order anniversary falls today or in the next ``days`` days.

    Expands to ``first_order_anniversary_in_days <= 7``.
    """
    return f"first_order_anniversary_in_days <= {days}"


# -- consent, place and age --------------------------------------------------------------------


@_template()
def email_subscribers() -> str:
    """Customers subscribed to email marketing.

    Expands to ``email_subscription_status = 'SUBSCRIBED'``.
    """
    return "email_subscription_status = 'SUBSCRIBED'"


@_template()
def sms_subscribers() -> str:
    """Customers subscribed to SMS marketing.

    Expands to ``sms_subscription_status = 'SUBSCRIBED'``.
    """
    return "sms_subscription_status = 'SUBSCRIBED'"


@_template(Param("name", "text", example="Springfield"))
def city(name: str) -> str:
    """Customers whose latest address is in the city ``name`` (exact spelling).

    Expands to ``city = 'Springfield'``.
    """
    return f"city = {_quote(name)}"


@_template(Param("code", "text", example="CA"))
def region(code: str) -> str:
    """Customers whose latest address is in the region / state ``code``.

    Expands to ``region = 'CA'``.
    """
    return f"region = {_quote(code)}"


@_template(Param("years", "integer", example=18, minimum=0, maximum=150))
def older_than(years: int) -> str:
    """Customers at least ``years`` full years old (needs a birth date).

    Expands to ``age >= 18``.
    """
    return f"age >= {years}"
