"""The segment query parser: tree shape, date forms, and every error message with its caret."""

from __future__ import annotations

import datetime as dt

import pytest

from segsync.core.errors import QueryError
from segsync.core.measure.attributes import BY_NAME, Attribute
from segsync.core.measure.days import shift_date
from segsync.core.segment import tree
from segsync.core.segment.compiler import compile_query
from segsync.core.segment.parser import parse

AMOUNT = tree.Attr("amount_spent", "float", "amount_spent")
TAGS = tree.Attr("customer_tags", "list", "customer_tags")
COUNTRY = tree.Attr("country", "string", "country")


def test_and_binds_tighter_than_or() -> None:
    expr = parse("country = 'CA' OR country = 'US' AND amount_spent > 1000").expr
    assert expr == tree.Or((
        tree.Compare(COUNTRY, "=", "CA"),
        tree.And((tree.Compare(COUNTRY, "=", "US"), tree.Compare(AMOUNT, ">", 1000.0))),
    ))


def test_not_applies_to_the_next_clause_or_group() -> None:
    assert parse("NOT country = 'US' AND amount_spent > 1").expr == tree.And(
        (tree.Not(tree.Compare(COUNTRY, "=", "US")), tree.Compare(AMOUNT, ">", 1.0)))
    assert parse("NOT (country = 'US' AND amount_spent > 1)").expr == tree.Not(
        tree.And((tree.Compare(COUNTRY, "=", "US"), tree.Compare(AMOUNT, ">", 1.0))))


def test_keywords_are_case_insensitive() -> None:
    lower = parse("customer_tags not contains 'x' and amount_spent is not null or "
                  "amount_spent between 1 and 2")
    upper = parse("customer_tags NOT CONTAINS 'x' AND amount_spent IS NOT NULL OR "
                  "amount_spent BETWEEN 1 AND 2")
    assert lower.expr == upper.expr
    assert lower.expr == tree.Or((
        tree.And((tree.Contains(TAGS, "x", True), tree.IsNull(AMOUNT, True))),
        tree.Between(AMOUNT, 1.0, 2.0),
    ))


def test_integer_literals_are_promoted_for_floats_only() -> None:
    value = parse("amount_spent = 5").expr.value  # type: ignore[union-attr]
    assert isinstance(value, float)
    count = parse("number_of_orders = 5").expr.value  # type: ignore[union-attr]
    assert isinstance(count, int) and not isinstance(count, bool)


def test_strings_unescape_quotes_and_backslashes() -> None:
    assert parse(r"city = 'O\'Brien \\ Co'").expr == tree.Compare(
        tree.Attr("city", "string", "city"), "=", "O'Brien \\ Co")
    assert parse("city = ''").expr == tree.Compare(tree.Attr("city", "string", "city"), "=", "")


def test_custom_attribute_literal_types() -> None:
    tier = tree.Attr("attributes.tier", "custom", "attributes", "tier")
    assert parse("attributes.tier = 'gold'").expr == tree.Compare(tier, "=", "gold")
    assert parse("attributes.tier = 5").expr == tree.Compare(tier, "=", 5)
    assert parse("attributes.tier = 2.5").expr == tree.Compare(tier, "=", 2.5)
    assert parse("attributes.tier = TRUE").expr == tree.Compare(tier, "=", True)
    assert parse("attributes.tier > -1w").expr == tree.Compare(
        tier, ">", tree.DateValue("-1w", 18, amount=-1, unit="w"))


def test_matches_parameters() -> None:
    text = ("products_purchased NOT MATCHES (tag IN ('a', 'b'), sku NOT IN ('c'), "
            "date BETWEEN -12m AND today, count >= 2, sum_quantity > 1)")
    expr = parse(text).expr
    assert expr == tree.Matches("products_purchased", (
        tree.Param("tag", "IN", ("a", "b")),
        tree.Param("sku", "NOT IN", ("c",)),
        tree.Param("date", "BETWEEN", (
            tree.DateValue("-12m", text.index("-12m"), amount=-12, unit="m"),
            tree.DateValue("today", text.index("today")),
        )),
        tree.Param("count", ">=", (2,)),
        tree.Param("sum_quantity", ">", (1.0,)),
    ), True)
    assert parse("orders_placed matches ()").expr == tree.Matches("orders_placed", (), False)


def test_a_custom_catalog_adds_boolean_attributes() -> None:
    catalog = {**BY_NAME, "accepts_gifts": Attribute("accepts_gifts", "boolean", "test flag")}
    flag = tree.Attr("accepts_gifts", "boolean", "accepts_gifts")
    assert parse("accepts_gifts = false", catalog).expr == tree.Compare(flag, "=", False)
    with pytest.raises(QueryError) as err:
        parse("accepts_gifts > true", catalog)
    assert err.value.reason == ("> does not work on accepts_gifts, a boolean; "
                                "use =, != or IS [NOT] NULL")


def test_canonical_text_ignores_layout_and_keyword_case() -> None:
    a = parse("amount_spent>100 and\n  customer_tags contains 'VIP'")
    b = parse("amount_spent > 100 AND customer_tags CONTAINS 'VIP'")
    assert a.canonical == b.canonical == "amount_spent > 100 AND customer_tags CONTAINS 'VIP'"
    assert parse("customer_tags CONTAINS 'vip'").canonical != b.canonical


@pytest.mark.parametrize(("day", "amount", "unit", "expected"), [
    (dt.date(2024, 3, 31), -1, "m", dt.date(2024, 2, 29)),  # leap February
    (dt.date(2023, 3, 31), -1, "m", dt.date(2023, 2, 28)),
    (dt.date(2024, 1, 31), 1, "m", dt.date(2024, 2, 29)),
    (dt.date(2024, 3, 31), -6, "m", dt.date(2023, 9, 30)),
    (dt.date(2024, 1, 15), -13, "m", dt.date(2022, 12, 15)),
    (dt.date(2024, 2, 29), -1, "y", dt.date(2023, 2, 28)),
    (dt.date(2024, 2, 29), 4, "y", dt.date(2028, 2, 29)),
    (dt.date(2024, 3, 31), -2, "w", dt.date(2024, 3, 17)),
    (dt.date(2024, 3, 31), -30, "d", dt.date(2024, 3, 1)),
    (dt.date(2024, 3, 31), 1, "d", dt.date(2024, 4, 1)),
])
def test_shift_date_uses_calendar_months_and_clamps(
        day: dt.date, amount: int, unit: str, expected: dt.date) -> None:
    assert shift_date(day, amount, unit) == expected


@pytest.mark.parametrize(("literal", "expected"), [
    ("2020-05-30", "2020-05-30"),
    ("2020-05-30T23:59:59", "2020-05-30"),  # a datetime counts as its day
    ("today", "2024-03-31"),
    ("YESTERDAY", "2024-03-30"),
    ("-30d", "2024-03-01"),
    ("+2w", "2024-04-14"),
    ("-1m", "2024-02-29"),
    ("-1y", "2023-03-31"),
    ("+0d", "2024-03-31"),
])
def test_date_literals_resolve_against_as_of(literal: str, expected: str) -> None:
    _, params = compile_query(f"last_order_date = {literal}", dt.date(2024, 3, 31))
    assert list(params.values()) == [expected]


# Each case: the query, the text the caret points at (None: the end of the query; an int: that
# offset), and the exact message.
ERRORS: list[tuple[str, str | int | None, str]] = [
    ("", 0, "empty query"),
    ("   ", 0, "empty query"),
    ("amount_spend > 100", "amount_spend",
     "unknown attribute 'amount_spend'; did you mean 'amount_spent'?"),
    ("Amount_Spent > 100", "Amount_Spent",
     "unknown attribute 'Amount_Spent'; did you mean 'amount_spent'?"),
    ("loyalty = 'x'", "loyalty",
     "unknown attribute 'loyalty' (custom attributes are written attributes.NAME)"),
    ("last_order_date > abc", "abc", "expected a date such as 2024-01-31, -30d or today, got abc"),
    ("last_order_date > 'abc'", "'abc'",
     "expected a date such as 2024-01-31, -30d or today, got 'abc'"),
    ("last_order_date > '2024-01-01'", "'", "dates are written without quotes: 2024-01-01"),
    ("amount_spent > '100'", "'", "numbers are written without quotes: 100"),
    ("number_of_orders > 2.5", "2.5", "expected a whole number such as 3, got 2.5"),
    ("amount_spent > abc", "abc", "expected a number such as 100 or 19.99, got abc"),
    ("city = Boston", "Boston", "expected a quoted string such as 'vip', got Boston"),
    ("city = NULL", "NULL", "use IS NULL or IS NOT NULL to test for a missing value"),
    ("email_subscription_status = 'subscribed'", "'",
     "enum email_subscription_status takes one of SUBSCRIBED, NOT_SUBSCRIBED, PENDING, "
     "UNSUBSCRIBED, INVALID, REDACTED, got 'subscribed'; did you mean 'SUBSCRIBED'?"),
    ("sms_subscription_status != 'YES'", "'",
     "enum sms_subscription_status takes one of SUBSCRIBED, NOT_SUBSCRIBED, PENDING, "
     "UNSUBSCRIBED, INVALID, REDACTED, got 'YES'"),
    ("email_subscription_status = SUBSCRIBED", "SUBSCRIBED",
     "enum values are quoted: write 'SUBSCRIBED'"),
    ("email_subscription_status =", None,
     "enum email_subscription_status takes one of SUBSCRIBED, NOT_SUBSCRIBED, PENDING, "
     "UNSUBSCRIBED, INVALID, REDACTED, got end of query"),
    ("email_subscription_status > 'SUBSCRIBED'", ">",
     "> does not work on email_subscription_status, an enum; use =, != or IS [NOT] NULL"),
    ("city < 'B'", "<", "< does not work on city, a string; use =, != or IS [NOT] NULL"),
    ("customer_tags = 'vip'", "=",
     "= does not work on customer_tags, a list; use CONTAINS, NOT CONTAINS or IS [NOT] NULL"),
    ("amount_spent CONTAINS 5", "CONTAINS",
     "CONTAINS works on lists; customer_tags, product_categories, product_vendors, "
     "product_skus, product_tags, locations, sources are lists (amount_spent is a float)"),
    ("city NOT CONTAINS 'x'", "CONTAINS",
     "CONTAINS works on lists; customer_tags, product_categories, product_vendors, "
     "product_skus, product_tags, locations, sources are lists (city is a string)"),
    ("city BETWEEN 'a' AND 'b'", "BETWEEN",
     "BETWEEN does not work on city, a string; use =, != or IS [NOT] NULL"),
    ("customer_tags BETWEEN 1 AND 2", "BETWEEN",
     "BETWEEN does not work on customer_tags, a list; use CONTAINS, NOT CONTAINS or "
     "IS [NOT] NULL"),
    ("customer_tags CONTAINS vip", "vip", "expected a quoted string such as 'vip', got vip"),
    ("amount_spent BETWEEN 100 AND 50", "100",
     "BETWEEN takes the lower bound first; these bounds match nothing"),
    ("last_order_date BETWEEN 2024-02-01 AND 2024-01-01", "2024-02-01",
     "BETWEEN takes the lower bound first; these bounds match nothing"),
    ("amount_spent BETWEEN 1 OR 5", "OR", "expected AND in BETWEEN … AND …, got OR"),
    ("amount_spent IS 5", "5", "expected NULL or NOT NULL after IS, got 5"),
    ("amount_spent IS NOT", None, "unexpected end of query: expected NULL or NOT NULL after IS"),
    ("amount_spent foo", "foo",
     "expected =, !=, <, <=, >, >=, BETWEEN or IS [NOT] NULL after amount_spent, got foo"),
    ("customer_tags", None, "unexpected end of query: expected CONTAINS, NOT CONTAINS or "
     "IS [NOT] NULL after customer_tags"),
    ("amount_spent >", None, "unexpected end of query: expected a number such as 100 or 19.99"),
    ("amount_spent NOT BETWEEN 1 AND 2", "BETWEEN", "expected CONTAINS after NOT, got BETWEEN"),
    ("(amount_spent > 1", "(", "unbalanced parenthesis: this ( is never closed"),
    ("amount_spent > 1 AND (city = 'a' OR (city = 'b')", 21,
     "unbalanced parenthesis: this ( is never closed"),
    ("amount_spent > 1)", ")", "unbalanced parenthesis: this ) has no matching ("),
    ("(amount_spent > 1 city = 'x')", "city", "expected AND, OR or ), got city"),
    ("amount_spent > 1 city = 'x'", "city",
     "unexpected city after a complete condition; join conditions with AND or OR"),
    ("amount_spent > 1 AND", None, "unexpected end of query: expected an attribute"),
    ("NOT", None, "unexpected end of query: expected an attribute"),
    ("AND amount_spent > 1", "AND", "expected an attribute, got AND"),
    ("()", ")", "expected an attribute, got )"),
    ("amount_spent > 1,000", "1,000", "numbers are written without thousands separators"),
    ("amount_spent > 99999999999999999999", "9", "number 99999999999999999999 is out of range"),
    ("amount_spent > 12abc", "12abc", "invalid number 12abc"),
    ("amount_spent > 5 % 2", "%", "unexpected character '%'"),
    ("amount_spent == 5", "==", "use = to test equality"),
    ("amount_spent <> 5", "<>", "use != for 'not equal'"),
    ("amount_spent ! 5", "!", "use != for 'not equal' or NOT before a condition"),
    ("last_order_date > 30d", "30d",
     "a date offset needs a sign: -30d (in the past) or +30d (in the future)"),
    ("last_order_date > 2024-1-5", "2024",
     "dates are written yyyy-mm-dd and datetimes yyyy-mm-ddTHH:mm:ss, got 2024-1-5"),
    ("last_order_date > 2024-01-05T10:00", "2024",
     "dates are written yyyy-mm-dd and datetimes yyyy-mm-ddTHH:mm:ss, got 2024-01-05T10:00"),
    ("last_order_date > 2024-02-30", "2024",
     "invalid date 2024-02-30: day is out of range for month"),
    ("last_order_date > 2024-01-01T25:00:00", "2024",
     "invalid datetime 2024-01-01T25:00:00: hour must be in 0..23"),
    ("city = 'Bos", "'", "unterminated string: add the closing '"),
    ("country IN ('US', 'CA')", "IN",
     "IN works only on the text parameters inside MATCHES (…); join clauses with OR instead"),
    ("amount_spent MATCHES ()", "MATCHES",
     "MATCHES works on the functions products_purchased and orders_placed; "
     "amount_spent is a float"),
    ("attributes.a-b = 1", "-", "unexpected character '-'"),
    ("attributes. = 1", "attributes",
     "a custom attribute is written attributes.NAME, NAME made of letters, digits and _; "
     "got attributes."),
    ("attributes.1x = 1", "attributes",
     "a custom attribute is written attributes.NAME, NAME made of letters, digits and _; "
     "got attributes.1x"),
    ("attributes.a.b = 1", "attributes",
     "a custom attribute is written attributes.NAME, NAME made of letters, digits and _; "
     "got attributes.a.b"),
    ("attributes.tier > 'gold'", "'gold'",
     "text compares only with = and !=, not >; use a number or a date to compare order"),
    ("attributes.vip < true", "true", "true/false compares only with = and !=, not <"),
    ("attributes.x BETWEEN 'a' AND 'b'", "'a'",
     "text compares only with = and !=, not BETWEEN; use a number or a date to compare order"),
    ("attributes.x BETWEEN 1 AND 2024-01-01", "2024", "BETWEEN needs two numbers or two dates"),
    ("attributes.tier = gold", "gold",
     "expected a number, a quoted string, a date or true/false, got gold"),
    ("products_purchased = 1", "=",
     "products_purchased is a function: write products_purchased MATCHES (…)"),
    ("orders_placed CONTAINS 'x'", "CONTAINS",
     "orders_placed is a function: write orders_placed MATCHES (…)"),
    ("products_purchased(id: 1) = true", "(",
     "the products_purchased(…) = true form is not supported; "
     "write products_purchased MATCHES (…)"),
    ("products_purchased", None,
     "unexpected end of query: expected MATCHES or NOT MATCHES after products_purchased"),
    ("products_purchased bought", "bought",
     "expected MATCHES or NOT MATCHES after products_purchased, got bought"),
    ("products_purchased NOT (tag = 'a')", "(", "expected MATCHES after NOT, got ("),
    ("products_purchased MATCHES tag = 'a'", "tag", "expected ( after MATCHES, got tag"),
    ("products_purchased MATCHES (tags = 'a')", "tags",
     "unknown parameter 'tags' for products_purchased; did you mean 'tag'? "
     "(it takes tag, category, vendor, sku, title, date, count, sum_quantity)"),
    ("orders_placed MATCHES (app_id = 1)", "app_id",
     "unknown parameter 'app_id' for orders_placed "
     "(it takes count, sum_amount, amount, date, location, channel)"),
    ("products_purchased MATCHES (tag = 'a', count > 1, tag = 'b')", "tag = 'b'",
     "parameter tag is given twice in products_purchased MATCHES (…)"),
    ("products_purchased MATCHES (tag = 'a'", "(",
     "unbalanced parenthesis: this ( is never closed"),
    ("products_purchased MATCHES (tag = 'a' date > -1d)", "date",
     "expected , or ) after a parameter, got date"),
    ("products_purchased MATCHES (tag = 'a',)", ")",
     "expected a parameter of products_purchased (tag, category, vendor, sku, title, date, "
     "count, sum_quantity), got )"),
    ("products_purchased MATCHES (tag > 'a')", ">",
     "> does not work on the tag parameter; use =, !=, IN or NOT IN"),
    ("products_purchased MATCHES (tag BETWEEN 'a' AND 'b')", "BETWEEN",
     "BETWEEN does not work on the tag parameter; use =, !=, IN or NOT IN"),
    ("products_purchased MATCHES (date IN (2024-01-01))", "IN",
     "IN does not work on the date parameter; use =, !=, <, <=, >, >= or BETWEEN"),
    ("orders_placed MATCHES (count NOT IN (1))", "NOT",
     "NOT does not work on the count parameter; use =, !=, <, <=, >, >= or BETWEEN"),
    ("products_purchased MATCHES (tag)", ")", "expected =, !=, IN or NOT IN after tag, got )"),
    ("products_purchased MATCHES (count >= 1.5)", "1.5",
     "expected a whole number such as 3, got 1.5"),
    ("orders_placed MATCHES (date > 'abc')", "'abc'",
     "expected a date such as 2024-01-31, -30d or today, got 'abc'"),
    ("orders_placed MATCHES (location = 5)", "5",
     "expected a quoted string such as 'vip', got 5"),
    ("orders_placed MATCHES (date BETWEEN 2024-02-01 AND 2024-01-01)", "2024-02-01",
     "BETWEEN takes the lower bound first; these bounds match nothing"),
    ("products_purchased MATCHES (tag IN ())", ")", "an IN list needs at least one value"),
    ("products_purchased MATCHES (tag IN 'a')", "'a'", "expected ( after IN, got 'a'"),
    ("products_purchased MATCHES (tag IN ('a' 'b'))", "'b'",
     "expected , or ) in the IN list, got 'b'"),
    ("products_purchased MATCHES (tag IN ('a', 'b'", "('a'",
     "unbalanced parenthesis: this ( is never closed"),
    ("products_purchased MATCHES (tag NOT = 'a')", "=", "expected IN after NOT, got ="),
    ("(" * 60 + "amount_spent > 1" + ")" * 60, 50, "the query nests deeper than 50 levels"),
]


@pytest.mark.parametrize(("query", "at", "message"), ERRORS, ids=[e[0][:60] for e in ERRORS])
def test_error_messages_point_at_the_problem(query: str, at: str | int | None,
                                             message: str) -> None:
    position = len(query) if at is None else at if isinstance(at, int) else query.index(at)
    with pytest.raises(QueryError) as err:
        parse(query)
    assert err.value.reason == message
    assert err.value.position == position
    # QueryError draws no caret under an empty query.
    caret = f"\n  {query}\n  {' ' * position}^" if query else ""
    assert str(err.value) == message + caret


def test_the_caret_stays_aligned_on_a_query_written_over_several_lines() -> None:
    query = "amount_spent > 1\n\tAND amount_spend > 2"
    with pytest.raises(QueryError) as err:
        parse(query)
    assert err.value.position == query.index("amount_spend ")
    assert str(err.value).splitlines()[1:] == [
        "  amount_spent > 1  AND amount_spend > 2",
        "                        ^",
    ]


def test_the_first_problem_in_reading_order_is_reported() -> None:
    # The bad operator comes before the unlexable character, so it is the one reported.
    with pytest.raises(QueryError) as err:
        parse("city < 'a' AND amount_spent > 5 % 2")
    assert err.value.position == 5


def test_an_offset_beyond_the_calendar_fails_at_compile_time_with_its_position() -> None:
    query = "amount_spent > 1 AND last_order_date > -9999999999d"
    with pytest.raises(QueryError) as err:
        compile_query(query, dt.date(2024, 3, 31))
    assert err.value.reason == "date -9999999999d is out of range"
    assert err.value.position == query.index("-9999999999d")
