"""Template segments (segsync.core.segment.templates): expansion, parameter checks, and membership.

The membership tests compile each template through the real
:func:`~segsync.core.segment.membership.compile_segment` with :data:`TEMPLATES` and run it on a
store scored by the real features and scores stages. The six people, as of 2024-06-15:

* 1: one order 10 days ago (50, Toys); email subscriber; Springfield, CA; born 1990-06-20.
* 2: orders 220 days ago (500, Books) and 5 days ago (1000, Toys); SMS subscriber; born 1980.
* 3: orders 2023-06-20 (100, Books) and 2023-10-16 (100), 243 days ago; lives in O'Fallon.
* 4: a prospect in NY, born 2010.
* 5: three orders of 10, 100 / 90 / 80 days ago: a fading regular.
* 6: orders 2023-11-20 and 2023-12-20 (60 each): a holiday-season buyer.

Worked out by hand: R = 4,5,1,·,3,2; F = 1,2,2,·,5,2; M = 2,5,4,·,1,3, so the RFM groups are
PROMISING, POTENTIAL_LOYALISTS, HIBERNATING, –, LOYAL_CUSTOMERS, HIBERNATING; spend percentiles
20, 80, 60, –, 0, 40; lifecycle NEW, ACTIVE, LAPSED, PROSPECT, AT_RISK, AT_RISK; orders in the
last year 1, 2, 2, 0, 3, 2, so only 5 is HEAVY (4 of 5 below it) and the rest LIGHT.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers_shop import AS_OF, Shop

from segsync.core.errors import ConfigError
from segsync.core.segment.membership import compile_segment, materialise
from segsync.core.segment.parser import parse
from segsync.core.segment.templates import TEMPLATES, describe_templates
from segsync.core.settings import SegmentSettings


@pytest.fixture(scope="module")
def shop() -> Shop:
    shop = Shop()
    shop.person(1, email_consent="subscribed", city="Springfield", region="CA",
                birth_date="1990-06-20")
    shop.order(1, 10, 50.0, lines=(("Toys", 50.0),))
    shop.person(2, sms_consent="subscribed", birth_date="1980-01-01")
    shop.order(2, 220, 500.0, lines=(("Books", 500.0),))
    shop.order(2, 5, 1000.0, lines=(("Toys", 1000.0),))
    shop.person(3, city="O'Fallon")
    shop.order(3, "2023-06-20", 100.0, lines=(("Books", 100.0),))
    shop.order(3, "2023-10-16", 100.0)
    shop.person(4, region="NY", birth_date="2010-01-01")
    shop.person(5)
    for days in (100, 90, 80):
        shop.order(5, days, 10.0)
    shop.person(6)
    shop.order(6, "2023-11-20", 60.0)
    shop.order(6, "2023-12-20", 60.0)
    # churn_risk = 1 - p_alive: 0.8 for 2, exactly 0.7 for 5, 0.1 for the other buyers.
    shop.predictions(AS_OF, {1: (0.9, "MEDIUM"), 2: (0.2, "HIGH"), 3: (0.9, "MEDIUM"),
                             5: (0.3, "LOW"), 6: (0.9, "MEDIUM")})
    shop.score()
    return shop


def members(shop: Shop, template: str, **params: Any) -> set[int]:
    seg = compile_segment("s", SegmentSettings(template=template, params=params), AS_OF,
                          TEMPLATES)
    return {pid for (pid,) in shop.db.execute(seg.sql, seg.params)}


@pytest.mark.parametrize(("template", "params", "expected"), [
    ("new_customers", {}, {1}),
    ("new_customers", {"days": 10}, set()),        # first order exactly 10 days ago
    ("returning_customers", {}, {2, 3, 5, 6}),
    ("lapsed", {}, {3}),                           # 243 > 240
    ("lapsed", {"days": 170}, {3, 6}),             # 6 last ordered 178 days ago
    ("fading_regulars", {}, {5}),
    ("top_spenders", {}, set()),                   # nobody has 90 % of buyers below
    ("top_spenders", {"percent": 20}, {2}),
    ("top_spenders", {"percent": 40}, {2, 3}),
    ("big_spenders", {}, {2}),
    ("big_spenders", {"amount": 1000.5}, set()),
    ("category_buyers", {"category": "books"}, {2, 3}),
    ("category_buyers", {"category": "BOOKS", "days": 300}, {2}),
    ("vip", {"percent": 40}, {2, 3}),
    ("vip", {"percent": 40, "days": 200}, {2}),
    ("rfm_group", {"group": "hibernating"}, {3, 6}),
    ("rfm_group", {"group": "PROMISING"}, {1}),
    ("lifecycle", {"stage": "at_risk"}, {5, 6}),
    ("lifecycle", {"stage": "LAPSED"}, {3}),
    ("lifecycle", {"stage": "Prospect"}, {4}),
    ("usage_tier", {"tier": "heavy"}, {5}),
    ("usage_tier", {"tier": "LIGHT"}, {1, 2, 3, 6}),
    ("usage_tier", {"tier": "medium"}, set()),
    ("high_churn_risk", {}, {2}),                  # 5's 0.7 is not above 0.7
    ("high_churn_risk", {"threshold": 0.5}, {2, 5}),
    ("predicted_high_value", {}, {2}),
    ("seasonal_buyers", {}, {6}),
    ("bought_this_time_last_year", {}, {3}),
    ("birthday_soon", {}, {1}),                    # 2024-06-20 is 5 days away
    ("birthday_soon", {"days": 4}, set()),
    ("anniversary_soon", {}, {3}),                 # first order 2023-06-20
    ("email_subscribers", {}, {1}),
    ("sms_subscribers", {}, {2}),
    ("city", {"name": "Springfield"}, {1}),
    ("city", {"name": "O'Fallon"}, {3}),
    ("region", {"code": "CA"}, {1}),
    ("region", {"code": "NY"}, {4}),
    ("older_than", {"years": 18}, {1, 2}),
    ("older_than", {"years": 34}, {2}),            # 1 turns 34 only in 5 days
])
def test_templates_select_the_expected_people(shop: Shop, template: str,
                                              params: dict[str, Any],
                                              expected: set[int]) -> None:
    assert members(shop, template, **params) == expected


def test_every_template_is_exercised_above() -> None:
    covered = {"new_customers", "returning_customers", "lapsed", "fading_regulars",
               "top_spenders", "big_spenders", "category_buyers", "vip", "rfm_group",
               "lifecycle", "usage_tier", "high_churn_risk", "predicted_high_value",
               "seasonal_buyers", "bought_this_time_last_year", "birthday_soon",
               "anniversary_soon", "email_subscribers", "sms_subscribers", "city", "region",
               "older_than"}
    assert set(TEMPLATES) == covered


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_each_docstring_shows_the_query_its_defaults_expand_to(name: str) -> None:
    template = TEMPLATES[name]
    query = template.example()
    assert f"Expands to ``{query}``" in (template.build.__doc__ or "")
    required = {p.name: p.example for p in template.params if p.required}
    assert template(required) == query
    parse(query)  # it type-checks against the catalog


def test_describe_templates_gives_name_params_query_and_description() -> None:
    described = {d["name"]: d for d in describe_templates()}
    assert list(described) == list(TEMPLATES)
    assert described["lapsed"] == {
        "name": "lapsed",
        "params": [{"name": "days", "type": "integer", "required": False, "default": 240,
                    "example": None, "choices": [], "takes": "a whole number from 1 to 36525"}],
        "query": "days_since_last_order > 240",
        "description": "Customers whose latest order is more than ``days`` days old "
                       "(Mailchimp: 8 months).",
    }
    category = described["category_buyers"]
    assert category["query"] == "products_purchased MATCHES (category = 'Books', date > -365d)"
    assert [p["required"] for p in category["params"]] == [True, False]
    assert described["lifecycle"]["params"][0]["choices"] == [
        "PROSPECT", "NEW", "REACTIVATED", "LOST", "LAPSED", "AT_RISK", "ACTIVE"]


def test_materialise_runs_template_segments(shop: Shop) -> None:
    segments = {"gone": SegmentSettings(template="lapsed"),
                "books": SegmentSettings(template="category_buyers",
                                         params={"category": "Books"})}
    assert materialise(shop.db, segments, AS_OF, templates=TEMPLATES) == {"gone": 1, "books": 2}


def test_text_parameters_are_values_never_query_syntax() -> None:
    for text in ["O'Fallon", "back\\slash", "x' OR city != '", "\\'"]:
        query = TEMPLATES["city"]({"name": text})
        assert parse(query).expr.value == text  # type: ignore[union-attr]


def test_numbers_are_written_without_exponents() -> None:
    assert TEMPLATES["high_churn_risk"]({"threshold": 1e-7}) == "churn_risk > 0.0000001"
    assert TEMPLATES["top_spenders"]({"percent": 12.5}) == "spend_percentile >= 87.5"
    assert TEMPLATES["big_spenders"]({"amount": 250.0}) == (
        "orders_placed MATCHES (sum_amount >= 250, date > -30d)")


@pytest.mark.parametrize(("template", "params", "message"), [
    ("lapsed", {"dayz": 30}, "template 'lapsed': unknown parameter 'dayz' (it takes days)"),
    ("returning_customers", {"days": 30},
     "template 'returning_customers': unknown parameter 'days' (it takes no parameters)"),
    ("category_buyers", {},
     "template 'category_buyers': missing parameter 'category' (a non-empty text)"),
    ("lapsed", {"days": "30"},
     "template 'lapsed': parameter 'days' must be a whole number from 1 to 36525, not '30'"),
    ("lapsed", {"days": True},
     "template 'lapsed': parameter 'days' must be a whole number from 1 to 36525, not True"),
    ("lapsed", {"days": 0},
     "template 'lapsed': parameter 'days' must be a whole number from 1 to 36525, not 0"),
    ("lapsed", {"days": 30.0},
     "template 'lapsed': parameter 'days' must be a whole number from 1 to 36525, not 30.0"),
    ("top_spenders", {"percent": 0},
     "template 'top_spenders': parameter 'percent' must be a number above 0 and at most 100, "
     "not 0"),
    ("top_spenders", {"percent": float("nan")},
     "template 'top_spenders': parameter 'percent' must be a number above 0 and at most 100, "
     "not nan"),
    ("big_spenders", {"amount": -1},
     "template 'big_spenders': parameter 'amount' must be a number at least 0, not -1"),
    ("lifecycle", {"stage": "GONE"},
     "template 'lifecycle': parameter 'stage' must be one of PROSPECT, NEW, REACTIVATED, LOST, "
     "LAPSED, AT_RISK, ACTIVE, not 'GONE'"),
    ("city", {"name": "  "},
     "template 'city': parameter 'name' must be a non-empty text, not '  '"),
])
def test_bad_parameters_are_config_errors(template: str, params: dict[str, Any],
                                          message: str) -> None:
    with pytest.raises(ConfigError) as err:
        TEMPLATES[template](params)
    assert str(err.value) == message


def test_every_parameter_problem_is_listed_and_compile_segment_reports_it() -> None:
    seg = SegmentSettings(template="category_buyers", params={"days": -1, "colour": "red"})
    with pytest.raises(ConfigError) as err:
        compile_segment("books", seg, AS_OF, TEMPLATES)
    assert err.value.problems == [
        "segment 'books': template 'category_buyers': unknown parameter 'colour' "
        "(it takes category, days)",
        "segment 'books': template 'category_buyers': missing parameter 'category' "
        "(a non-empty text)",
        "segment 'books': template 'category_buyers': parameter 'days' must be a whole number "
        "from 1 to 36525, not -1",
    ]
