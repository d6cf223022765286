"""Work per distinct value gathered back equals the work on every row, whatever the values repeat."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.parsers.distinct import by_distinct, per_distinct
from rca.parsers.fields import _as_string, _level_of_text

VALUES = st.lists(st.one_of(st.none(), st.sampled_from(["GET /a HTTP/1.1", "info", " WARN", "30", "", "é"]), st.text(max_size=6)), max_size=60)


@settings(max_examples=80, deadline=None)
@given(VALUES)
def test_distinct_values_gathered_by_code_give_the_column_back(values):
    column = pl.Series("v", values, dtype=pl.String)
    codes, distinct = by_distinct(column)
    assert distinct.n_unique() == len(distinct) == column.drop_nulls().n_unique()
    assert distinct.gather(codes).equals(column)


@settings(max_examples=80, deadline=None)
@given(VALUES)
def test_a_function_per_distinct_value_equals_it_on_every_row(values):
    column = pl.Series("level", values, dtype=pl.String)
    assert per_distinct(column, _level_of_text).equals(_level_of_text(_as_string(column)))
    assert per_distinct(column, lambda s: s.str.len_bytes()).to_list() == column.str.len_bytes().to_list()
