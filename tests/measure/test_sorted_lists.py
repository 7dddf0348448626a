"""The shortcut list form of a person's own lists (``customer_tags``, ``sources``) writes exactly
what the general form writes: the same bytes for every JSON array, one element or more."""

from __future__ import annotations

import json
import sqlite3

from hypothesis import example, given, settings
from hypothesis import strategies as st

from segsync.core.measure import features

_ELEMENT = st.one_of(st.text(max_size=6), st.just(""), st.none(), st.integers(-5, 5),
                     st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                     st.lists(st.text(max_size=3), max_size=2),
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ELEMENT, max_size=4), st.booleans())
@example(["shopify"], False)
@example(['quote " and \\ and \u00e9 and \n'], True)
@example([""], False)
@example([None], True)
@example([1.50], False)
@example([["a"]], False)
@example([{"a": 1}], True)
@example([True], False)
def test_the_shortcut_writes_what_the_sorted_form_writes(values: list, spaced: bool) -> None:
    array = json.dumps(values, separators=(", ", ": ") if spaced else (",", ":"))
    db = sqlite3.connect(":memory:")
    general, shortcut = db.execute(
        f"SELECT {features._SORTED.format(array='?1')}, "
        f"{features._SORTED_PERSONAL.format(array='?1')}", [array]).fetchone()
    assert shortcut == general
